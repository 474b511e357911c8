"""The example inputs shipped in ``example_inputs/``: every file a shipped workflow loads is there, small, what
``scripts/make_example_inputs.py`` makes, and the pack copies them into ComfyUI's input folder on import without ever
overwriting a file. (tests/comfyui/test_workflows.py runs each workflow on a server whose input folder starts empty.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from tests.node_stubs import fake_comfyui, import_pack, import_pack_module

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = REPO_ROOT / "example_inputs"
MEDIA_WIDGETS = {"LoadImage": 0, "LoadVideo": 0}  # node type -> index of its file widget
MAX_TOTAL_BYTES = 100_000


@pytest.fixture(scope="module")
def examples_module():
    return import_pack_module("nodes._example_inputs")


def shipped_media() -> set[str]:
    names = set()
    for path in (REPO_ROOT / "workflows").glob("*.json"):
        for node in json.loads(path.read_text())["nodes"]:
            if node["type"] in MEDIA_WIDGETS:
                names.add(node["widgets_values"][MEDIA_WIDGETS[node["type"]]])
    return names


def test_every_file_a_workflow_loads_ships_with_the_pack(examples_module):
    shipped = {path.name for path in examples_module.example_files()}
    wanted = shipped_media()
    assert wanted, "no shipped workflow loads a file"
    assert wanted <= shipped, f"loaded by a workflow but not in example_inputs/: {sorted(wanted - shipped)}"
    assert all(name.startswith("dreamdance_") for name in shipped)
    assert sum((EXAMPLES / name).stat().st_size for name in shipped) < MAX_TOTAL_BYTES


def test_example_images_are_what_the_script_makes(tmp_path: Path):
    """Pixel for pixel: the reference PNG and the map WEBPs (the WEBM is checked by decoding it in ComfyUI's own
    video loader, tests/comfyui/test_workflows.py)."""
    from scripts import make_example_inputs as make

    with Image.open(EXAMPLES / make.REFERENCE_IMAGE) as image:
        np.testing.assert_array_equal(np.asarray(image.convert("RGB")), make.reference_image())
    for name, frames in make.example_maps(make.MAP_FRAMES, *make.MAP_SIZE).items():
        with Image.open(EXAMPLES / make.MAP_FILES[name]) as image:
            shipped = np.stack([np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)])
        np.testing.assert_array_equal(shipped, frames, err_msg=name)


def test_copies_the_missing_examples_without_overwriting(examples_module, tmp_path: Path):
    inputs = tmp_path / "input"
    inputs.mkdir()
    own = inputs / "dreamdance_reference.png"
    own.write_bytes(b"the user's own file")
    copied = examples_module.install_example_inputs(inputs)
    names = {path.name for path in examples_module.example_files()}
    assert set(copied) == names - {own.name}
    assert own.read_bytes() == b"the user's own file"
    for name in copied:
        assert (inputs / name).read_bytes() == (EXAMPLES / name).read_bytes()
    assert sorted(p.name for p in inputs.iterdir()) == sorted(names)  # no partial files left behind
    assert examples_module.install_example_inputs(inputs) == []  # a second import copies nothing


def test_an_unwritable_input_folder_is_logged_not_raised(examples_module, tmp_path: Path, caplog):
    not_a_folder = tmp_path / "input"
    not_a_folder.write_text("a file where the input folder should be")
    assert examples_module.install_example_inputs(not_a_folder) == []
    assert "could not copy the example inputs" in caplog.text


def test_opt_out(examples_module, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("DREAMDANCE_NO_EXAMPLE_INPUTS", "1")
    assert examples_module.install_example_inputs(tmp_path) == []
    assert not list(tmp_path.iterdir())


def test_importing_the_pack_fills_comfyuis_input_folder(tmp_path: Path):
    """What ComfyUI does: import the pack (under another folder name) with ComfyUI's input folder set."""
    with fake_comfyui(tmp_path) as comfy:
        try:
            import_pack("dreamdance_pack_fill")
        finally:
            for name in [name for name in sys.modules if name.startswith("dreamdance_pack_fill")]:
                del sys.modules[name]
        assert {p.name for p in comfy.input_dir.iterdir()} >= shipped_media()
