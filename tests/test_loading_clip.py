"""CLIP image encoder loading from transformers folders and ComfyUI-style single files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import CLIPVisionModelWithProjection

from dreamdance_core.loading import WeightFileError
from dreamdance_core.loading.clip_vision import CLIP_VISION_CONFIGS, _detect_config, load_clip_image_encoder
from tests.tiny_sd15 import state_dicts_equal, tiny_clip_vision, write_clip_vision_folder


@pytest.fixture(scope="module")
def encoder() -> CLIPVisionModelWithProjection:
    torch.manual_seed(2)
    return tiny_clip_vision()


@pytest.fixture(scope="module")
def files(encoder, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clip")
    folder = write_clip_vision_folder(root / "pipeline" / "image_encoder", encoder)
    single = root / "clip_vision" / "tiny-clip-vision.safetensors"
    single.parent.mkdir()
    save_file({k: v.contiguous() for k, v in encoder.state_dict().items()}, str(single))
    return {"folder": folder, "pipeline": root / "pipeline", "single": single}


def _error(call, *args, **kwargs) -> str:
    with pytest.raises(WeightFileError) as info:
        call(*args, **kwargs)
    return str(info.value)


def _save(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


def test_single_file_keys_are_transformers_names(encoder):
    """ComfyUI's clip_vision files use these names; transformers 5 still does (no flattening as for CLIPTextModel)."""
    keys = set(encoder.state_dict())
    assert "visual_projection.weight" in keys and "vision_model.embeddings.patch_embedding.weight" in keys
    assert "vision_model.embeddings.position_ids" not in keys  # a non-persistent buffer


@pytest.mark.parametrize("where", ["folder", "pipeline"])
def test_folder_loads_exact_weights_and_outputs(where, encoder, files):
    loaded = load_clip_image_encoder(files[where])
    assert state_dicts_equal(loaded.state_dict(), encoder.state_dict())
    assert not loaded.training
    pixels = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(loaded(pixel_values=pixels).image_embeds, encoder(pixel_values=pixels).image_embeds)


def test_single_file_with_config(encoder, files):
    loaded = load_clip_image_encoder(files["single"], config=files["folder"], dtype=torch.float16)
    assert loaded.dtype == torch.float16
    assert state_dicts_equal(loaded.state_dict(), {k: v.half() for k, v in encoder.state_dict().items()})


def test_old_position_ids_buffer_is_accepted(encoder, files, tmp_path):
    """Files written by transformers < 4.31 carry the position_ids buffer."""
    tensors = {**encoder.state_dict(), "vision_model.embeddings.position_ids": torch.arange(257)[None]}
    loaded = load_clip_image_encoder(_save(tmp_path / "old.safetensors", tensors), config=files["folder"])
    assert state_dicts_equal(loaded.state_dict(), encoder.state_dict())


@pytest.mark.parametrize("name, parameters", [("vit_l14", 303_966_208), ("vit_h14", 632_076_800)])
def test_shipped_configs_are_detected_from_shapes(name, parameters):
    """A ViT-L/14 or ViT-H/14 file (here: weightless tensors of the real shapes) gets the matching config."""
    with torch.device("meta"):
        real = CLIPVisionModelWithProjection(
            CLIPVisionModelWithProjection.config_class.from_pretrained(CLIP_VISION_CONFIGS / name)
        )
    assert sum(p.numel() for p in real.parameters()) == parameters
    detected = _detect_config(real.state_dict(), Path(f"{name}.safetensors"))
    assert detected.to_dict() == real.config.to_dict()


def test_unknown_size_needs_a_config(files):
    message = _error(load_clip_image_encoder, files["single"])
    assert "width 32 with 2 layers" in message and "config=" in message and "vit_h14: width 1280 x 32" in message


def test_missing_and_unexpected_keys_are_listed(encoder, files, tmp_path):
    tensors = dict(encoder.state_dict())
    del tensors["visual_projection.weight"]
    tensors["multi_modal_projector.linear_1.bias"] = torch.zeros(4)
    message = _error(load_clip_image_encoder, _save(tmp_path / "x.safetensors", tensors), config=files["folder"])
    assert "1 missing keys: visual_projection.weight" in message
    assert "1 unexpected keys: multi_modal_projector.linear_1.bias" in message


def test_open_clip_layout_is_named(tmp_path):
    path = _save(tmp_path / "open_clip.safetensors", {"visual.conv1.weight": torch.zeros(8, 3, 14, 14)})
    message = _error(load_clip_image_encoder, path)
    assert "not a CLIP vision model in transformers key names" in message and "visual" in message


def test_missing_truncated_and_pickle_files(files, tmp_path):
    message = _error(load_clip_image_encoder, tmp_path / "clip_vision" / "clip_vision_h.safetensors")
    assert "'clip_vision_h.safetensors'" in message and "ComfyUI/models/clip_vision" in message
    data = files["single"].read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:1000])
    assert "truncated or corrupt" in _error(load_clip_image_encoder, tmp_path / "cut.safetensors",
                                            config=files["folder"])
    (tmp_path / "model.bin").write_bytes(b"x")
    assert "pickle" in _error(load_clip_image_encoder, tmp_path / "model.bin")


def test_folder_with_only_pickle_weights(encoder, tmp_path):
    encoder.config.save_pretrained(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    message = _error(load_clip_image_encoder, tmp_path)
    assert "pickle" in message and "pytorch_model.bin" in message
