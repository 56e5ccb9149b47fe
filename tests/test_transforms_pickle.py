"""Transforms pickled by the single-module ``correlate.transforms`` (before its types moved to
``correlate._transforms``) read back as the same maps; new pickles and NGFF JSON name only the
public module and round-trip."""

from __future__ import annotations

import base64
import pickle

import numpy as np
import pytest

from correlate import transforms as tf

#: ``pickle.dumps(objects, protocol=4)`` of :func:`_objects`, written by the previous layout.
_OLD_PICKLE = (
    "gASVPgcAAAAAAAB9lCiMCGlkZW50aXR5lIwUY29ycmVsYXRlLnRyYW5zZm9ybXOUjAhJZGVudGl0eZSTlCmBlH2UjARuZGlt"
    "lEsDc2KMC3RyYW5zbGF0aW9ulGgCjAtUcmFuc2xhdGlvbpSTlCmBlH2UKIwGb2Zmc2V0lIwWbnVtcHkuX2NvcmUubXVsdGlh"
    "cnJheZSMDF9yZWNvbnN0cnVjdJSTlIwFbnVtcHmUjAduZGFycmF5lJOUSwCFlEMBYpSHlFKUKEsBSwKFlGgRjAVkdHlwZZST"
    "lIwCZjiUiYiHlFKUKEsDjAE8lE5OTkr/////Sv////9LAHSUYolDEAAAAAAAAPg/AAAAAAAAAMCUdJRiaAdLAnVijAVzY2Fs"
    "ZZRoAowFU2NhbGWUk5QpgZR9lCiMB2ZhY3RvcnOUaBBoE0sAhZRoFYeUUpQoSwFLA4WUaB2JQxgAAAAAAAAAQAAAAAAAAOA/"
    "AAAAAAAAEECUdJRiaAdLA3VijAZhZmZpbmWUaAKMBkFmZmluZZSTlCmBlH2UKIwCX22UaBBoE0sAhZRoFYeUUpQoSwFLA0sD"
    "hpRoHYlDSC7Ig/Eyr/E/5khnsUbo3b8AAAAAAAAkQOZIZ7FG6N0/LsiD8TKv8T8AAAAAAAAUwAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAADwP5R0lGJoB0sCdWKMCHNlcXVlbmNllGgCjAhTZXF1ZW5jZZSTlCmBlH2UKIwKdHJhbnNmb3Jtc5RdlChoJCmBlH2U"
    "KGgnaBBoE0sAhZRoFYeUUpQoSwFLAoWUaB2JQxAAAAAAAAAAQAAAAAAAAABAlHSUYmgHSwJ1YmgCjA9UaGluUGxhdGVTcGxp"
    "bmWUk5QpgZR9lCiMB2NlbnRlcnOUaBBoE0sAhZRoFYeUUpQoSwFLBUsChpRoHYlDUAAAAAAAAAAAAAAAAAAAAAAAAAAAAECP"
    "QAAAAAAAAAAAAAAAAAAAAAAAAAAAAECPQAAAAAAAQI9AAAAAAABAj0AAAAAAAAB5QAAAAAAA4IVAlHSUYowHd2VpZ2h0c5Ro"
    "EGgTSwCFlGgVh5RSlChLAUsFSwKGlGgdiUNQ09g9YVWDub4C1z1hVYOpPtPCMZTV9LK+KMQxlNX0oj4lr9BEgLbPvsiv0ESA"
    "tr8+RTHcLgcrxL4vMNwuByu0Pp8rmTtnh+I+ZiuZO2eH0r6UdJRiaC5oEGgTSwCFlGgVh5RSlChLAUsCSwOGlGgdiEMw2w+u"
    "30wq8D8olVuPNeOev2Du1m1r4JM/SKRIUn6w7z88IWp2Fa9BQCAhanYVLzLAlHSUYmgHSwKMCXNtb290aGluZ5RHQCQAAAAA"
    "AAB1YmVoB0sCjAlpc19saW5lYXKUiXVijAN0cHOUaEuMC3Rwc19pbnZlcnNllGgCjA5fTmV3dG9uSW52ZXJzZZSTlCmBlH2U"
    "KIwHZm9yd2FyZJRoS2gHSwKMA3RvbJRHPhEuC+gm1pWMCG1heF9pdGVylEsyjAVfc2VlZJRoMCmBlH2UKGgzaBBoE0sAhZRo"
    "FYeUUpQoSwFLA0sDhpRoHYlDSH9fDaWFp+8/zkP34Mrak7/zdcaAUatBwNiHAQB32p4/AAlFTrkl8D/v7yIHJ0kxQAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAADwP5R0lGJoB0sCdWJ1YowFZmllbGSUaAKMEURpc3BsYWNlbWVudEZpZWxklJOUKYGUfZQojAZv"
    "cmlnaW6UaBBoE0sAhZRoFYeUUpQoSwFLAoWUaB2JQxAAAAAAAAAAAAAAAAAAAAAAlHSUYowHc3BhY2luZ5RoEGgTSwCFlGgV"
    "h5RSlChLAUsChZRoHYlDEAAAAAAAQG9AAAAAAABAb0CUdJRijA1kaXNwbGFjZW1lbnRzlGgQaBNLAIWUaBWHlFKUKEsBSwJL"
    "BUsFh5RoHYlCkAEAAKhXhfwDAAjAlsZPRpLTJcBwSY/s/5AywHwkW6mt4jnAARZkLwCAQMCALJreBgAYwDAV9MRoHSzAqLLu"
    "kRC8NcBAX0fdLe48wJBFyV2B8UHAgFHVldScIcCQ5Ggh5hcxwMC1rLcm0jjAALJ6g9XRP8D4rbaHKUxDwMCpjIdnQibAwKyQ"
    "CYCQM8BgLnbAil07wDCeYMV2H0HA0MmDZcp5RMBABUJ6AgAqwKAAtCC+SjXAQPSPPtQUPcDAEp8J/RZCwPAj12QAgEXAIFeF"
    "/AMAFEAAjZ+MJKcgQKAlPbL/QyZAwJFspbaKKkAAsCB7AQAuQGAsmt4GACZAICroidE6LUBAZd0jIXgxQIC+jrpbXDNAQBYl"
    "dwXGNECIUdWV1JwwQEDJ0ULMrzRAgGtZb02kN0DgY/UGqyM5QMC32h6mMDpA4qmMh2dCNUBwWSETAKE5QOBc7IAVuzxAAHmC"
    "Fdv9PUBAJw+WKec+QHQFQnoCADlAcAFoQXwVPUBg9I8+1BRAQHAlPhP67UBA4EeuyQCAQUCUdJRiaAdLAnVidS4="
)


def _objects() -> dict[str, tf.Transform]:
    src = np.array([[0.0, 0.0], [1000.0, 0.0], [0.0, 1000.0], [1000.0, 1000.0], [400.0, 700.0]])
    dst = src @ np.array([[1.01, 0.02], [-0.03, 0.99]]).T + [5.0, -3.0]
    dst[4] += [4.0, -2.0]
    tps = tf.ThinPlateSpline.fit(src, dst, smoothing=10.0)
    return {
        "identity": tf.Identity(3),
        "translation": tf.Translation([1.5, -2.0]),
        "scale": tf.Scale([2.0, 0.5, 4.0]),
        "affine": tf.Affine.similarity(1.2, 0.4, (10.0, -5.0)),
        "sequence": tf.Sequence([tf.Scale([2.0, 2.0]), tps]),
        "tps": tps,
        "tps_inverse": tps.inverse(),
        "field": tps.to_displacement_field((0.0, 0.0), (250.0, 250.0), (5, 5)),
    }


def _points(ndim: int) -> np.ndarray:
    return np.random.default_rng(7).uniform(50.0, 950.0, (64, ndim))


def test_old_pickles_read_back_as_the_same_maps():
    old = pickle.loads(base64.b64decode("".join(_OLD_PICKLE)))
    new = _objects()
    assert old.keys() == new.keys()
    for name, t in new.items():
        o = old[name]
        assert type(o) is type(t), name
        p = _points(t.ndim)
        np.testing.assert_allclose(o.apply(p), t.apply(p), rtol=0, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(o.inverse().apply(p), t.inverse().apply(p), rtol=0, atol=1e-9, err_msg=name)
        assert o.to_ngff() == t.to_ngff(), name


@pytest.mark.parametrize("name", list(_objects()))
def test_new_pickles_and_ngff_name_the_public_module_and_round_trip(name):
    t = _objects()[name]
    blob = pickle.dumps(t)
    assert b"correlate._transforms" not in blob and b"correlate.transforms" in blob
    p = _points(t.ndim)
    backs = [pickle.loads(blob)]
    if name != "field":  # a displacement field's array is stored beside its NGFF JSON, not in it
        backs.append(tf.from_ngff(t.to_ngff(), ndim=t.ndim))
    for back in backs:
        assert type(back) is type(t)
        np.testing.assert_allclose(back.apply(p), t.apply(p), rtol=0, atol=1e-9)
