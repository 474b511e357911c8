"""The demo checkpoints shipped in the repository: small models of the real architecture trained by ``train/`` on the
synthetic mannequins (:mod:`dreamdance_core.synthetic`), so the pipeline shows a real result on a fresh CPU-only
machine without downloading anything.

``stage1/`` is a self-contained Stage-1 weights folder (with its own ``vae/`` and ``image_encoder/``); ``stage2/`` a
self-contained Stage-2 weights folder (with its own ``svd/``: a small SVD trained on the same mannequins, since Stage 2
keeps SVD frozen). Each carries ``demo.json``: the size it was
trained at, its sampler defaults, how it was made and what it scored (see the *Demo checkpoints* section of the project
README).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
STAGE1_DIR = DEMO_DIR / "stage1"
STAGE2_DIR = DEMO_DIR / "stage2"


@dataclass(frozen=True)
class DemoInfo:
    """What ``demo.json`` records: the training size and the sampler settings the benchmark used.

    ``guidance``: Stage 1, the CFG scales of RGB, normal and depth; Stage 2, SVD's ``(min_cfg, max_cfg)``.
    """

    path: Path
    width: int
    height: int
    steps: int
    guidance: tuple[float, ...]


def _demo(folder: Path) -> DemoInfo | None:
    meta = folder / "demo.json"
    if not meta.is_file():
        return None
    info = json.loads(meta.read_text())
    return DemoInfo(folder, int(info["width"]), int(info["height"]), int(info["steps"]), tuple(info["guidance"]))


def stage1_demo() -> DemoInfo | None:
    """The shipped Stage-1 demo checkpoint, or None when this copy of the pack does not carry it."""
    return _demo(STAGE1_DIR)


def stage2_demo() -> DemoInfo | None:
    """The shipped Stage-2 demo checkpoint, or None when this copy of the pack does not carry it."""
    return _demo(STAGE2_DIR)
