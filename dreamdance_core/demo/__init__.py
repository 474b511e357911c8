"""The demo checkpoints shipped in the repository: small models of the real architecture trained by ``train/`` on the
synthetic mannequins (:mod:`dreamdance_core.synthetic`), so the pipeline shows a real result on a fresh CPU-only
machine without downloading anything.

``stage1/`` is a self-contained Stage-1 weights folder (with its own ``vae/`` and ``image_encoder/``) plus
``demo.json``: the size it was trained at, its sampler defaults, how it was made and what it scored (see the
*Demo checkpoint* section of the project README). There is no Stage-2 demo checkpoint yet: Stage 2 runs a tiny
random model unless given weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
STAGE1_DIR = DEMO_DIR / "stage1"


@dataclass(frozen=True)
class DemoInfo:
    """What ``demo.json`` records: the training size and the sampler settings the benchmark used."""

    path: Path
    width: int
    height: int
    steps: int
    guidance: tuple[float, float, float]


def stage1_demo() -> DemoInfo | None:
    """The shipped Stage-1 demo checkpoint, or None when this copy of the pack does not carry it."""
    meta = STAGE1_DIR / "demo.json"
    if not meta.is_file():
        return None
    info = json.loads(meta.read_text())
    return DemoInfo(STAGE1_DIR, int(info["width"]), int(info["height"]), int(info["steps"]), tuple(info["guidance"]))
