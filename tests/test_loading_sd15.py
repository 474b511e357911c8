"""SD1.5 UNet/VAE loading from diffusers folders and LDM single files: exact weights, strictness, clear errors."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import load_file, save_file

from dreamdance_core.loading import WeightFileError
from dreamdance_core.loading.sd15 import SD15_CONFIGS, load_sd15_unet, load_sd15_vae
from dreamdance_core.loading.sd15_layout import unet_to_ldm, vae_to_ldm
from tests.tiny_sd15 import (
    state_dicts_equal,
    tiny_unet,
    tiny_vae,
    write_diffusers_folder,
    write_ldm_single_file,
)

# what a real SD1.x single file carries besides UNet and VAE: text encoder weights and DDPM schedule buffers
SD1_EXTRAS = {
    "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight": torch.zeros(77, 8),
    "cond_stage_model.transformer.text_model.final_layer_norm.weight": torch.ones(8),
    "alphas_cumprod": torch.linspace(1.0, 0.01, 1000),
}


@pytest.fixture(scope="module")
def models() -> tuple[UNet2DConditionModel, AutoencoderKL]:
    torch.manual_seed(1)
    return tiny_unet(), tiny_vae()


@pytest.fixture(scope="module")
def files(models, tmp_path_factory) -> dict[str, Path]:
    """The tiny SD1.5 in every format: diffusers folder, config-only folder, LDM single file."""
    unet, vae = models
    root = tmp_path_factory.mktemp("sd15")
    return {
        "folder": write_diffusers_folder(root / "diffusers", unet, vae),
        "config": write_diffusers_folder(root / "config", unet, vae, configs_only=True),
        "single": write_ldm_single_file(root / "checkpoints" / "tiny-sd15.safetensors", unet, vae, SD1_EXTRAS),
    }


def _ldm_file(path: Path, models, *, edit=None) -> Path:
    """The tiny LDM single file with its tensors changed by ``edit(tensors)`` (in place)."""
    unet, vae = models
    tensors = {**unet_to_ldm(unet), **vae_to_ldm(vae), **SD1_EXTRAS}
    if edit is not None:
        edit(tensors)
    save_file(tensors, str(path))
    return path


# ------------------------------------------------------------------------------------------ the test converters


@pytest.mark.parametrize(
    "layout",
    [{}, {"block_out_channels": (16, 32, 32), "layers_per_block": 2, "cross_attention_blocks": 2}],
    ids=["2-blocks-1-layer", "3-blocks-2-layers"],
)
def test_test_converters_invert_diffusers_single_file_conversion(layout, tmp_path):
    """diffusers' own from_single_file reads our LDM files back to the very same weights (any block layout)."""
    unet, vae = tiny_unet(**layout), tiny_vae()
    config = write_diffusers_folder(tmp_path / "config", unet, vae, configs_only=True)
    single = write_ldm_single_file(tmp_path / "model.safetensors", unet, vae)
    loaded_unet = UNet2DConditionModel.from_single_file(str(single), config=str(config), subfolder="unet")
    loaded_vae = AutoencoderKL.from_single_file(str(single), config=str(config), subfolder="vae")
    assert state_dicts_equal(loaded_unet.state_dict(), unet.state_dict())
    assert state_dicts_equal(loaded_vae.state_dict(), vae.state_dict())


def test_shipped_configs_are_sd15_and_test_converters_give_its_ldm_names():
    """Shipped configs have SD1.5's parameter counts; the LDM names are those of real SD1.5 files."""
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(SD15_CONFIGS / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(SD15_CONFIGS / "vae"))
    assert sum(p.numel() for p in unet.parameters()) == 859_520_964
    assert sum(p.numel() for p in vae.parameters()) == 83_653_863
    assert vae.config.scaling_factor == pytest.approx(0.18215)
    unet_keys, vae_keys = set(unet_to_ldm(unet)), set(vae_to_ldm(vae))
    assert len(unet_keys) == 686 and len(vae_keys) == 248
    for name in ("input_blocks.3.0.op.weight", "output_blocks.2.1.conv.weight", "output_blocks.5.2.conv.weight",
                 "output_blocks.11.0.skip_connection.weight", "middle_block.1.proj_in.weight", "out.2.bias"):
        assert "model.diffusion_model." + name in unet_keys
    for name in ("decoder.up.3.upsample.conv.weight", "encoder.mid.attn_1.proj_out.weight",
                 "encoder.down.1.block.0.nin_shortcut.weight", "decoder.norm_out.bias"):
        assert "first_stage_model." + name in vae_keys


# ------------------------------------------------------------------------------------------ exact loading


@pytest.mark.parametrize("loader, index", [(load_sd15_unet, 0), (load_sd15_vae, 1)], ids=["unet", "vae"])
def test_diffusers_folder_loads_exact_weights(loader, index, models, files):
    expected = models[index].state_dict()
    assert state_dicts_equal(loader(files["folder"]).state_dict(), expected)
    component = files["folder"] / ("unet", "vae")[index]
    assert state_dicts_equal(loader(component).state_dict(), expected)  # a component folder on its own


@pytest.mark.parametrize("loader, index", [(load_sd15_unet, 0), (load_sd15_vae, 1)], ids=["unet", "vae"])
def test_single_file_loads_exact_weights(loader, index, models, files):
    loaded = loader(files["single"], config=files["config"])
    assert state_dicts_equal(loaded.state_dict(), models[index].state_dict())
    assert not loaded.training


def test_single_file_matches_diffusers_from_single_file(files):
    ours = load_sd15_unet(files["single"], config=files["config"])
    theirs = UNet2DConditionModel.from_single_file(str(files["single"]), config=str(files["config"]), subfolder="unet")
    assert state_dicts_equal(ours.state_dict(), theirs.state_dict())


def test_loaded_unet_reproduces_outputs_bit_for_bit(models, files):
    """Folder and single-file loads give outputs bitwise equal to the in-memory model's."""
    torch.manual_seed(0)
    sample, timestep, context = torch.randn(2, 4, 8, 8), torch.tensor([10, 500]), torch.randn(2, 5, 32)
    with torch.no_grad():
        outputs = [
            model(sample, timestep, encoder_hidden_states=context).sample
            for model in (
                models[0],
                load_sd15_unet(files["folder"]),
                load_sd15_unet(files["single"], config=files["config"]),
            )
        ]
    assert torch.equal(outputs[1], outputs[0]) and torch.equal(outputs[2], outputs[0])


def test_vae_reproduces_latents_bit_for_bit(models, files):
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    vaes = (models[1], load_sd15_vae(files["folder"]), load_sd15_vae(files["single"], config=files["config"]))
    with torch.no_grad():
        latents = [vae.encode(image).latent_dist.mean for vae in vaes]
    assert torch.equal(latents[1], latents[0]) and torch.equal(latents[2], latents[0])


def test_dtype_and_fp16_variant_folder(models, files, tmp_path):
    """``dtype`` casts; a folder holding only ``diffusion_pytorch_model.fp16.safetensors`` loads too."""
    unet = models[0]
    copy.deepcopy(unet).half().save_pretrained(tmp_path, variant="fp16")
    assert [p.name for p in tmp_path.glob("*.safetensors")] == ["diffusion_pytorch_model.fp16.safetensors"]
    loaded = load_sd15_unet(tmp_path, dtype=torch.float16)
    assert all(p.dtype == torch.float16 for p in loaded.parameters())
    assert state_dicts_equal(loaded.state_dict(), {k: v.half() for k, v in unet.state_dict().items()})


def test_standalone_ldm_vae_file(models, files, tmp_path):
    """A VAE file as found in ComfyUI's models/vae (LDM names without the first_stage_model. prefix)."""
    path = tmp_path / "vae-ft-mse.safetensors"
    save_file(vae_to_ldm(models[1], prefix=""), str(path))
    assert state_dicts_equal(load_sd15_vae(path, config=files["config"]).state_dict(), models[1].state_dict())


# ------------------------------------------------------------------------------------------ errors


def _error(call, *args, **kwargs) -> str:
    with pytest.raises(WeightFileError) as info:
        call(*args, **kwargs)
    return str(info.value)


def test_missing_file_names_it_and_how_to_get_sd15(tmp_path):
    message = _error(load_sd15_unet, tmp_path / "checkpoints" / "v1-5-pruned-emaonly.safetensors")
    assert "'v1-5-pruned-emaonly.safetensors'" in message and str(tmp_path / "checkpoints") in message
    assert "ComfyUI/models/checkpoints" in message


def test_folder_without_model(tmp_path):
    message = _error(load_sd15_vae, tmp_path)
    assert "vae/config.json" in message and str(tmp_path) in message


def test_folder_without_weights_lists_what_is_there(models, tmp_path):
    models[0].save_config(tmp_path / "unet")
    message = _error(load_sd15_unet, tmp_path)
    assert "diffusion_pytorch_model.safetensors" in message and "config.json" in message


def test_pickles_are_refused(models, tmp_path):
    (tmp_path / "model.ckpt").write_bytes(b"not even read")
    assert "pickle" in _error(load_sd15_unet, tmp_path / "model.ckpt")
    models[0].save_config(tmp_path / "unet")
    torch.save(models[0].state_dict(), tmp_path / "unet" / "diffusion_pytorch_model.bin")
    message = _error(load_sd15_unet, tmp_path)
    assert "pickle" in message and "diffusion_pytorch_model.bin" in message


def test_truncated_file(files, tmp_path):
    data = files["single"].read_bytes()
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(data[: len(data) // 2])
    message = _error(load_sd15_unet, broken, config=files["config"])
    assert str(broken) in message and "truncated or corrupt" in message


def test_missing_keys_are_listed(models, files, tmp_path):
    def drop(tensors):
        del tensors["model.diffusion_model.output_blocks.0.0.in_layers.2.weight"]
        del tensors["first_stage_model.decoder.mid.attn_1.q.weight"]

    path = _ldm_file(tmp_path / "incomplete.safetensors", models, edit=drop)
    message = _error(load_sd15_unet, path, config=files["config"])
    assert "1 missing keys: up_blocks.0.resnets.0.conv1.weight" in message and str(path) in message
    assert "missing keys: decoder.mid_block.attentions.0.to_q.weight" in _error(load_sd15_vae, path,
                                                                                config=files["config"])


def test_missing_keys_in_folder_are_listed(files, tmp_path):
    state = load_file(str(files["folder"] / "vae" / "diffusion_pytorch_model.safetensors"))
    del state["encoder.conv_in.bias"]
    folder = tmp_path / "vae"
    folder.mkdir()
    (folder / "config.json").write_text((files["folder"] / "vae" / "config.json").read_text())
    save_file(state, str(folder / "diffusion_pytorch_model.safetensors"))
    assert "1 missing keys: encoder.conv_in.bias" in _error(load_sd15_vae, tmp_path)


def test_unexpected_unet_keys_are_listed(models, files, tmp_path):
    def add(tensors):
        tensors["model.diffusion_model.input_blocks.1.2.motion.weight"] = torch.zeros(3)

    path = _ldm_file(tmp_path / "extra.safetensors", models, edit=add)
    message = _error(load_sd15_unet, path, config=files["config"])
    assert "unexpected" in message and "model.diffusion_model.input_blocks.1.2.motion.weight" in message


def test_config_that_does_not_fit_the_file(files):
    """The tiny file read with the real SD1.5 configs: shapes differ, and the error says which."""
    message = _error(load_sd15_unet, files["single"])
    assert "shape mismatches" in message and "conv_in.weight: file (32, 4, 3, 3) vs model (320, 4, 3, 3)" in message


def test_config_of_the_wrong_class(files, tmp_path):
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text((files["config"] / "vae" / "config.json").read_text())
    assert "describes a AutoencoderKL, not a UNet2DConditionModel" in _error(
        load_sd15_unet, files["single"], config=tmp_path
    )


@pytest.mark.parametrize(
    "marker, family",
    [
        ("conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias", "SDXL base"),
        ("model.diffusion_model.input_blocks.1.0.time_stack.in_layers.0.weight", "Stable Video Diffusion"),
    ],
)
def test_other_model_families_are_named(marker, family, models, files, tmp_path):
    path = _ldm_file(tmp_path / "other.safetensors", models, edit=lambda t: t.update({marker: torch.zeros(4)}))
    message = _error(load_sd15_vae, path, config=files["config"])
    assert f"is a {family} checkpoint, not Stable Diffusion 1.5" in message


def test_file_without_sd15_weights(tmp_path, files):
    """A file holding neither LDM nor diffusers-named SD1.5 weights; the error says what groups it found."""
    path = tmp_path / "clip.safetensors"
    save_file({"vision_model.embeddings.class_embedding": torch.zeros(4)}, str(path))
    message = _error(load_sd15_unet, path, config=files["config"])
    assert "holds no SD1.5 unet weights in the LDM layout" in message and "vision_model" in message
