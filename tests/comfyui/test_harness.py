"""The harness itself against the real server: a core-node prompt runs, bad prompts fail the way ComfyUI says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scripts.comfyui_harness import (
    PACK_FOLDER_NAME,
    REPO_ROOT,
    ComfyInstall,
    ComfyServer,
    PromptFailed,
    PromptRejected,
    ServerDirs,
)
from tests.comfyui.workflow_api import ui_workflow_to_api

CORE_EXAMPLE = Path(__file__).parent / "data" / "core_example.json"


def test_core_example_workflow_runs_to_completion(comfy_server: ComfyServer):
    """EmptyImage (height fed by an Int node) -> bypassed Invert -> Invert -> Reroute -> SaveImage, converted in
    Python: the saved images have the linked height and the colour inverted once (the bypassed node did nothing)."""
    prompt = ui_workflow_to_api(json.loads(CORE_EXAMPLE.read_text()), comfy_server.get("/object_info"))
    entry = comfy_server.run_prompt(prompt, timeout=60)
    images = entry["outputs"]["6"]["images"]
    assert len(images) == 2  # batch_size 2
    for image in images:
        pixels = np.asarray(Image.open(comfy_server.output_dir / image["subfolder"] / image["filename"]))
        assert pixels.shape == (48, 64, 3)
        assert (np.abs(pixels.astype(int) - [0, 127, 255]) <= 1).all()  # 0xff8000 inverted (SaveImage truncates)


def test_invalid_input_is_rejected_with_the_validation_error(comfy_server: ComfyServer):
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 0, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    with pytest.raises(PromptRejected) as rejected:
        comfy_server.run_prompt(prompt)
    assert rejected.value.status == 400
    assert rejected.value.body["error"]["type"] == "prompt_outputs_failed_validation"
    error = rejected.value.body["node_errors"]["1"]["errors"][0]
    assert (error["type"], error["details"]) == ("value_smaller_than_min", "width")


def test_a_node_that_raises_is_reported_with_its_message(comfy_server: ComfyServer):
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "../escape"}},
    }
    with pytest.raises(PromptFailed, match="outside the output folder") as failed:
        comfy_server.run_prompt(prompt)
    assert failed.value.entry["status"]["status_str"] == "error"


def test_only_this_packs_import_failures_count(tmp_path: Path):
    """The log check ignores ComfyUI's own failing modules (audio, without torchaudio) and paths that merely start
    with the repository's path, and catches every form of failure line for this pack."""
    dirs = ServerDirs(tmp_path)
    pack = dirs.packs / PACK_FOLDER_NAME
    ours = [
        f"Cannot import {pack} module for custom nodes: No module named 'does_not_exist'",
        f"   0.1 seconds (IMPORT FAILED): {pack}",
        f"Error while calling comfy_entrypoint in {REPO_ROOT}",
    ]
    noise = [
        f"Cannot import {REPO_ROOT}/.comfyui-test/ComfyUI/comfy_extras/nodes_audio.py module for custom nodes: x",
        "IMPORT FAILED: nodes_audio.py",
        f"   0.0 seconds: {pack}",
    ]
    dirs.log.parent.mkdir(parents=True, exist_ok=True)
    dirs.log.write_text("\n".join(noise + ours) + "\n")
    server = ComfyServer(ComfyInstall(tmp_path, tmp_path / "python"), dirs)
    assert server.pack_import_failures() == ours


@pytest.mark.parametrize("folder", ["dreamdance", "checkpoints"])
def test_model_folders_include_the_session_models_dir(comfy_server: ComfyServer, folder: str):
    """Later tests drop tiny weights into ``models_dir/<folder>``; the server must list them."""
    weights = comfy_server.models_dir / folder / f"harness_probe_{folder}.safetensors"
    weights.write_bytes(b"")
    try:
        assert weights.name in comfy_server.get(f"/models/{folder}")
    finally:
        weights.unlink()
