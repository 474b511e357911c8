"""Loading SVD (diffusers folder, original single file) and the Stage-2 control weights, on tiny models."""

import json

import pytest
import torch
from safetensors.torch import save_file

from dreamdance_core.loading.svd import (
    CLIP_PREFIX,
    SVD_CONFIG_DIR,
    UNET_PREFIX,
    build_svd_models,
    clip_original_key,
    load_stage2_control,
    load_svd_folder,
    load_svd_single_file,
    original_state_dict,
    save_stage2_control,
    svd_single_file_state_dict,
    unet_original_key,
)
from dreamdance_core.weights import WeightFileError
from tests.tiny_svd import (
    randomize_,
    save_diffusers_folder,
    tiny_components,
    tiny_controller,
    tiny_controlnet,
    write_config_dir,
)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.fixture(scope="module")
def components():
    return tiny_components()


def test_diffusers_folder_round_trip_is_bit_exact(components, tmp_path):
    loaded = load_svd_folder(save_diffusers_folder(components, tmp_path))
    for name in ("unet", "vae", "image_encoder"):
        assert_same_weights(getattr(components, name), getattr(loaded, name))
    assert dict(loaded.scheduler_config) == dict(components.scheduler_config)
    assert type(loaded.unet).__name__ == "ControlledSVDUNet"


def test_diffusers_folder_with_missing_weights_is_refused(components, tmp_path):
    folder = save_diffusers_folder(components, tmp_path)
    (folder / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(WeightFileError, match=r"no weights in .*vae: .* found config\.json\. Use Stable Video"):
        load_svd_folder(folder)
    with pytest.raises(WeightFileError, match="not found"):
        load_svd_folder(tmp_path / "nowhere")


def test_diffusers_folder_with_another_vae_class_is_refused(components, tmp_path):
    folder = save_diffusers_folder(components, tmp_path)
    config = json.loads((folder / "vae" / "config.json").read_text())
    (folder / "vae" / "config.json").write_text(json.dumps({**config, "_class_name": "AutoencoderKL"}))
    with pytest.raises(WeightFileError, match="'AutoencoderKL'.*one of AutoencoderKLTemporalDecoder, AutoencoderTiny"):
        load_svd_folder(folder)


def test_single_file_round_trip_is_bit_exact(components, tmp_path):
    original = svd_single_file_state_dict(components)
    # a real ComfyUI file carries more (e.g. the conditioner's VAE-encoder copy); it is ignored
    original["conditioner.embedders.3.encoder.encoder.conv_in.weight"] = torch.zeros(1)
    path = tmp_path / "svd_xt_1_1.safetensors"
    save_file(original, str(path))
    loaded = load_svd_single_file(path, config_dir=write_config_dir(components, tmp_path / "configs"))
    for name in ("unet", "vae", "image_encoder"):
        assert_same_weights(getattr(components, name), getattr(loaded, name))
    # and the original layout it was read from is reproduced exactly
    again = svd_single_file_state_dict(loaded)
    assert again.keys() == set(original) - {"conditioner.embedders.3.encoder.encoder.conv_in.weight"}
    assert all(torch.equal(again[k], original[k]) for k in again)


def test_single_file_uses_original_key_names(components):
    original = svd_single_file_state_dict(components)
    for key in (
        "model.diffusion_model.input_blocks.0.0.weight",
        "model.diffusion_model.input_blocks.1.0.time_stack.in_layers.2.weight",
        "model.diffusion_model.input_blocks.1.1.time_stack.0.attn1.to_q.weight",
        "model.diffusion_model.middle_block.1.time_pos_embed.0.weight",
        "model.diffusion_model.label_emb.0.0.weight",
        "first_stage_model.decoder.mid.block_1.mix_factor",
        "first_stage_model.decoder.conv_out.time_mix_conv.weight",
        "first_stage_model.encoder.mid.attn_1.q.weight",
        "conditioner.embedders.0.open_clip.model.visual.transformer.resblocks.0.attn.in_proj_weight",
        "conditioner.embedders.0.open_clip.model.visual.proj",
    ):
        assert key in original, key
    assert original["first_stage_model.encoder.mid.attn_1.q.weight"].ndim == 4  # 1x1 conv in the original VAE


def test_key_maps_cover_the_real_svd_xt_architecture():
    """Built on the meta device from the shipped configs: no memory, no weights."""
    with torch.device("meta"):
        real = build_svd_models(SVD_CONFIG_DIR)
    unet_keys = original_state_dict(real.unet, UNET_PREFIX, lambda k: unet_original_key(k, 2, {1, 2, 3}))
    clip_keys = original_state_dict(real.image_encoder, CLIP_PREFIX, clip_original_key)
    for key in (
        "model.diffusion_model.input_blocks.11.0.time_stack.out_layers.3.weight",  # last down level, 2 layers
        "model.diffusion_model.output_blocks.2.1.conv.weight",  # upsampler of the attention-free up level
        "model.diffusion_model.output_blocks.5.2.conv.weight",
        "model.diffusion_model.output_blocks.8.2.conv.weight",
        "model.diffusion_model.output_blocks.11.1.proj_out.weight",
    ):
        assert key in unet_keys, key
    assert "model.diffusion_model.output_blocks.11.2.conv.weight" not in unet_keys
    assert tuple(clip_keys[CLIP_PREFIX + "proj"].shape) == (1280, 1024)
    assert tuple(clip_keys[CLIP_PREFIX + "transformer.resblocks.31.attn.in_proj_weight"].shape) == (3840, 1280)


def test_single_file_problems_are_reported(components, tmp_path):
    configs = write_config_dir(components, tmp_path / "configs")
    original = svd_single_file_state_dict(components)
    missing = dict(original)
    del missing["model.diffusion_model.out.2.weight"]
    save_file(missing, str(tmp_path / "missing.safetensors"))
    with pytest.raises(WeightFileError, match=r"missing keys: model\.diffusion_model\.out\.2\.weight"):
        load_svd_single_file(tmp_path / "missing.safetensors", config_dir=configs)
    extra = dict(original, **{"model.diffusion_model.input_blocks.99.0.weight": torch.zeros(1)})
    save_file(extra, str(tmp_path / "extra.safetensors"))
    with pytest.raises(WeightFileError, match="unexpected keys"):
        load_svd_single_file(tmp_path / "extra.safetensors", config_dir=configs)
    wrong = dict(original, **{"first_stage_model.encoder.conv_in.weight": torch.zeros(5, 3, 3, 3)})
    save_file(wrong, str(tmp_path / "wrong.safetensors"))
    mismatch = r"1 shape mismatches: first_stage_model\.encoder\.conv_in\.weight: file \(5, 3, 3, 3\) vs model \(32, 3"
    with pytest.raises(WeightFileError, match=mismatch):
        load_svd_single_file(tmp_path / "wrong.safetensors", config_dir=configs)
    (tmp_path / "corrupt.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(WeightFileError, match="truncated or corrupt"):
        load_svd_single_file(tmp_path / "corrupt.safetensors", config_dir=configs)
    (tmp_path / "svd.ckpt").write_bytes(b"pickle")
    with pytest.raises(WeightFileError, match="pickle"):
        load_svd_single_file(tmp_path / "svd.ckpt", config_dir=configs)


def test_control_weights_round_trip_is_bit_exact(components, tmp_path):
    controller = randomize_(tiny_controller(modalities=("pose", "depth", "normal", "densepose")), seed=1)
    controlnet = randomize_(tiny_controlnet(components.unet), seed=2)
    save_stage2_control(tmp_path, controller, controlnet)
    loaded_controller, loaded_controlnet = load_stage2_control(tmp_path)
    assert_same_weights(controller, loaded_controller)
    assert_same_weights(controlnet, loaded_controlnet)
    assert loaded_controller.modalities == ("pose", "depth", "normal", "densepose")


def test_control_weight_problems_are_reported(components, tmp_path):
    save_stage2_control(tmp_path, tiny_controller(), tiny_controlnet(components.unet))
    # a config that does not match the saved weights
    config_path = tmp_path / "controller" / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps(dict(config, block_channels=[8, 24])))
    with pytest.raises(WeightFileError, match="shape mismatches"):
        load_stage2_control(tmp_path)
    config_path.write_text(json.dumps(dict(config, out_channels=64, attention_heads=4)))
    with pytest.raises(WeightFileError, match="shape mismatches"):
        load_stage2_control(tmp_path)
    config_path.write_text(json.dumps(config))
    weights = tmp_path / "controlnet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(WeightFileError, match="truncated or corrupt"):
        load_stage2_control(tmp_path)
    with pytest.raises(WeightFileError, match="no config.json"):
        load_stage2_control(tmp_path / "elsewhere")
