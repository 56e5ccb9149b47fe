"""Reader discovery: the module index, imports limited to the claimants, the plug-in cache."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap

import pytest

from correlate.io import _plugin_cache, _reader_index, _registry


def test_index_lists_every_reader_module_as_it_is():
    present = _registry._builtin_modules()
    for name in present:
        module = importlib.import_module(f"correlate.io.readers.{name}")
        specs = getattr(module, "READERS", [])
        names = tuple(s.name for s in specs)
        suffixes = {x for s in specs for x in s.suffixes}
        assert name in _reader_index.MODULES, f"reader module {name} missing from io/_reader_index.py"
        inames, isuffixes = _reader_index.MODULES[name]
        assert inames == names, name
        numbered = {x for x in suffixes if x[1:].isdigit()}
        if len(numbered) > 3:
            assert _reader_index.NUMBERED in isuffixes and len(numbered) == 1000
            suffixes -= numbered
        assert set(isuffixes) - {_reader_index.NUMBERED} == suffixes, name
    assert set(_reader_index.MODULES) <= set(present), "index names modules that no longer exist"


@pytest.mark.parametrize("filename", ["a.csv", "b.TIF", "c.ome.tiff", "d.002", "e.h5", "f.unknown", "g.spm"])
def test_claiming_modules_match_the_specs(filename):
    from pathlib import Path

    claims = {s.name for s in _registry.available_readers() if s.claims(Path(filename))}
    via_index = {s.name for s in _registry._builtin_specs(_reader_index.modules_claiming(filename))
                 if s.claims(Path(filename))}
    assert claims == via_index


def test_reading_a_csv_imports_only_the_csv_readers(tmp_path):
    f = tmp_path / "locs.csv"
    f.write_text('"id","frame","x [nm]","y [nm]"\n1,1,10.5,20.25\n2,3,11,21\n')
    code = textwrap.dedent(f"""
        import sys, correlate.io as cio
        df = cio.read({str(f)!r})
        assert df.attrs["source_format"] == "thunderstorm" and len(df) == 2
        print(sorted(m.rsplit(".", 1)[1] for m in sys.modules if m.startswith("correlate.io.readers.")))
        print("importlib.metadata" in sys.modules)
    """)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    env.update({k: v for k, v in __import__("os").environ.items() if k.startswith("PYTHON")})
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
            for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
    loaded = eval(runs[1].stdout.splitlines()[0])
    # the readers' private helper modules (_smlm_common, _text, _smlm_columns...) may come along
    assert {m for m in loaded if not m.startswith("_")} == set(_reader_index.modules_claiming("locs.csv"))
    assert runs[1].stdout.splitlines()[1] == "False"  # second process: plug-in list from the cache
    assert (tmp_path / "cache" / "correlate" / "reader_plugins.json").exists()


def test_a_module_missing_from_the_index_is_still_asked(monkeypatch, tmp_path):
    f = tmp_path / "locs.csv"
    f.write_text("x [nm],y [nm],frame\n1,2,1\n")
    trimmed = {k: v for k, v in _reader_index.MODULES.items() if k != "smlm_thunderstorm"}
    monkeypatch.setattr(_reader_index, "MODULES", trimmed)
    assert _registry.find_reader(f).name == "thunderstorm"
    assert _registry.find_reader(f, format="thunderstorm").name == "thunderstorm"


def _fake_plugin(tmp_path, monkeypatch):
    pkg = tmp_path / "plugins"
    pkg.mkdir()
    (pkg / "fakeplug.py").write_text(textwrap.dedent("""
        from correlate.io import ReaderSpec
        READERS = [ReaderSpec(name="fake", suffixes=(".fake",), modality="smlm", read=lambda p, **k: None,
                              priority=99)]
    """))
    monkeypatch.syspath_prepend(str(pkg))  # a folder without distributions: not part of the key
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CORRELATE_NO_CACHE", raising=False)
    _registry._plugin_specs_cached.cache_clear()
    cache = _plugin_cache._cache_file()
    cache.parent.mkdir(parents=True)
    return cache


def test_plugins_come_from_the_cache_while_the_key_holds(tmp_path, monkeypatch):
    cache = _fake_plugin(tmp_path, monkeypatch)
    f = tmp_path / "x.fake"
    f.write_text("anything")
    cache.write_text(json.dumps({"key": _plugin_cache._key(), "entry_points": [["fake", "fakeplug:READERS"]]}))
    try:
        assert _registry.find_reader(f).name == "fake"
        # a stale key (a distribution installed or removed since): scanned again, the fake is gone
        cache.write_text(json.dumps({"key": ["other"], "entry_points": [["fake", "fakeplug:READERS"]]}))
        _registry._plugin_specs_cached.cache_clear()
        with pytest.raises(Exception, match="no reader recognises"):
            _registry.find_reader(f)
        assert json.loads(cache.read_text())["key"] == _plugin_cache._key()
    finally:
        _registry._plugin_specs_cached.cache_clear()


def test_a_broken_cache_file_is_rescanned(tmp_path, monkeypatch):
    cache = _fake_plugin(tmp_path, monkeypatch)
    cache.write_text("{not json")
    assert _plugin_cache.plugin_entry_points() == _plugin_cache._scan()
    assert json.loads(cache.read_text())["key"] == _plugin_cache._key()
