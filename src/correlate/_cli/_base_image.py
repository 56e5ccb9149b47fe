"""What ``overlay`` and ``report`` share: ``--assume-aligned`` and opening a store with a base image."""

from __future__ import annotations

from ..errors import CorrelateError

ASSUME_ALIGNED_HELP = (
    "draw labels that no registration placed in the base image's frame (the frames are already aligned); "
    "otherwise a label named in --labels that is unplaced is an error and, by default, unplaced labels "
    "are left out and named"
)


def add_assume_aligned(parser) -> None:
    """Add ``--assume-aligned`` (labels drawn in the base image's frame without a registration)."""
    parser.add_argument("--assume-aligned", action="store_true", help=ASSUME_ALIGNED_HELP)


def open_with_base(args):
    """The store of ``args.store`` opened read-only, after checking that ``--base`` (if given and
    present) is an image."""
    from ..scene import Scene

    scene = Scene.open(args.store, mode="r")
    if args.base and args.base in scene and scene.kind(args.base) != "image":
        raise CorrelateError(f"the base must be an image; {args.base!r} is {scene.kind(args.base)}", field="base")
    return scene
