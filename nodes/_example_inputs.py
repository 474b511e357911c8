"""The example inputs the shipped workflows load, copied into ComfyUI's input folder when the pack is imported.

Why a copy at import: the shipped workflows load the example reference image, maps and driving video through core
Load Image / Load Video nodes, so a user swaps in their own file with the node's upload button, and the workflows run
as shipped on a fresh install. ComfyUI's template browser only fetches a custom pack's workflow JSON (ComfyUI 0.3.75
``app/custom_node_manager.py``; frontend 1.32.9 ``useTemplateWorkflows``); the newest frontend (1.58) can fetch a
template's input files, but only from Comfy-Org's own template repository. A pack node yielding the examples would
have to be replaced by hand before a user's own image could be used. ComfyUI itself ships ``input/example.png`` the
same way.

Rules: only files named ``dreamdance_*`` from the pack's ``example_inputs/`` folder; a file already in the input folder
(the user's, or an earlier copy) is never overwritten; a failure (read-only folder) is logged, never raised; set
``DREAMDANCE_NO_EXAMPLE_INPUTS=1`` to switch the copy off. No ComfyUI or torch import at module level.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

EXAMPLE_INPUTS = Path(__file__).resolve().parents[1] / "example_inputs"
PREFIX = "dreamdance_"
OPT_OUT = "DREAMDANCE_NO_EXAMPLE_INPUTS"

log = logging.getLogger("DreamDance")


def example_files(folder: Path = EXAMPLE_INPUTS) -> list[Path]:
    """The pack's example inputs (sorted)."""
    return sorted(p for p in folder.glob(f"{PREFIX}*") if p.is_file()) if folder.is_dir() else []


def _publish(partial: Path, destination: Path) -> bool:
    """Give the complete copy its name unless that name exists (checked atomically where hard links work)."""
    try:
        os.link(partial, destination)
    except FileExistsError:
        return False
    except OSError:  # no hard links on this file system
        if destination.exists():
            return False
        os.replace(partial, destination)
    return True


def install_example_inputs(input_dir: str | Path | None = None, folder: Path = EXAMPLE_INPUTS) -> list[str]:
    """Copy the example inputs missing from ``input_dir`` (default: ComfyUI's input folder) into it; returns the names
    copied. Never overwrites, never raises (a failure is logged)."""
    if os.environ.get(OPT_OUT) == "1":
        return []
    try:
        if input_dir is None:
            try:
                import folder_paths
            except ImportError:  # imported outside ComfyUI: no input folder to fill
                return []
            input_dir = folder_paths.get_input_directory()
        target = Path(input_dir)
        copied = []
        for source in example_files(folder):
            destination = target / source.name
            if destination.exists() or destination.is_symlink():
                continue
            target.mkdir(parents=True, exist_ok=True)
            partial = destination.with_name(f".{destination.name}.partial")
            shutil.copyfile(source, partial)
            try:
                if _publish(partial, destination):
                    copied.append(source.name)
            finally:
                partial.unlink(missing_ok=True)
        if copied:
            log.info("DreamDance: copied example inputs %s into %s", ", ".join(copied), target)
        return copied
    except Exception as error:  # an example file must never stop the pack from loading
        log.warning("DreamDance: could not copy the example inputs into ComfyUI's input folder (%s); the shipped "
                    "workflows then need your own files in their Load Image / Load Video nodes", error)
        return []
