"""The weight files users really have, in their real layouts (tiny shapes): each loads like its reference loader does,
or is refused before any tensor is read with a message that names the file and the fix.

Issue 28 ("the real-weights path"): old diffusers VAE attention names, diffusers-named single files, the full OpenAI
CLIP file, stage-aware CLIP advice, fp16-only SVD folders, SVD files saved by ComfyUI, the old ``position_ids``
buffer, and a lean single-file SVD load that refuses a wrong file from its header.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel, UNetSpatioTemporalConditionModel
from safetensors.torch import load_file, save_file
from transformers import CLIPConfig, CLIPModel, CLIPVisionModelWithProjection

from dreamdance_core import weights
from dreamdance_core.loading.clip_vision import (
    CLIP_VISION_CONFIGS,
    HOW_TO_GET_CLIP,
    POSITION_IDS,
    _detect_config,
    image_tower,
    load_clip_image_encoder,
)
from dreamdance_core.loading.sd15 import load_sd15_unet, load_sd15_vae
from dreamdance_core.loading.stage1 import load_geometry_pipeline
from dreamdance_core.loading.svd import (
    CLIP_PREFIX,
    load_svd_folder,
    load_svd_single_file,
    svd_single_file_state_dict,
)
from dreamdance_core.weights import WeightFileError
from tests.tiny_sd15 import (
    state_dicts_equal,
    tiny_clip_vision,
    tiny_unet,
    tiny_vae,
    write_clip_vision_folder,
    write_diffusers_folder,
    write_ldm_single_file,
)
from tests.tiny_svd import save_diffusers_folder, tiny_components, write_config_dir

# ---------------------------------------------------------------------------------------------------------- helpers

# diffusers' pre-0.14 AttentionBlock names, which _fix_state_dict_keys_on_load renames (modeling_utils.py)
_OLD_ATTENTION = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
_VAE_ATTENTION_KEY = re.compile(r"^((?:encoder|decoder)\.mid_block\.attentions\.0\.)(to_q|to_k|to_v|to_out\.0)\.")


def old_attention_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A diffusers VAE state dict as older diffusers saved it (stock SD1.5 folders, stabilityai/sd-vae-ft-mse)."""
    return {_VAE_ATTENTION_KEY.sub(lambda m: m[1] + _OLD_ATTENTION[m[2]] + ".", key): v for key, v in state.items()}


def rewrite_safetensors(path: Path, edit) -> Path:
    """Replace ``path``'s tensors by ``edit(tensors)``, keeping its metadata (transformers reads ``format``)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata()
    tensors = edit(load_file(str(path)))
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    return path


def with_position_ids(tensors: dict[str, torch.Tensor], prefix: str = "", positions: int = 257):
    """Add the ``position_ids`` buffer transformers < 4.31 saved with every CLIP vision model."""
    return {**tensors, prefix + POSITION_IDS: torch.arange(positions)[None]}


def comfyui_svd_layout(components) -> dict[str, torch.Tensor]:
    """What ComfyUI's ImageOnlyCheckpointSave writes: UNet and VAE as in Stability's file, the image encoder as
    ComfyUI's CLIPVisionModelProjection state dict (transformers names) under SVD_img2vid.clip_vision_prefix
    (supported_models_base.BASE.process_clip_vision_state_dict_for_saving)."""
    original = svd_single_file_state_dict(components)
    layout = {k: v for k, v in original.items() if not k.startswith(CLIP_PREFIX)}
    layout.update({CLIP_PREFIX + k: v.contiguous() for k, v in components.image_encoder.state_dict().items()})
    return layout


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module, dtype: torch.dtype | None = None) -> None:
    expected = {k: (v.to(dtype) if dtype and v.is_floating_point() else v) for k, v in b.state_dict().items()}
    assert state_dicts_equal(a.state_dict(), expected)


def _error(call, *args, **kwargs) -> str:
    with pytest.raises(WeightFileError) as info:
        call(*args, **kwargs)
    return str(info.value)


@pytest.fixture(scope="module")
def sd15(tmp_path_factory):
    torch.manual_seed(11)
    unet, vae = tiny_unet(), tiny_vae()
    root = tmp_path_factory.mktemp("sd15")
    folder = write_diffusers_folder(root / "stock", unet, vae)
    rewrite_safetensors(folder / "vae" / "diffusion_pytorch_model.safetensors", old_attention_names)
    config = write_diffusers_folder(root / "config", unet, vae, configs_only=True)
    return {"unet": unet, "vae": vae, "stock": folder, "config": config, "root": root}


@pytest.fixture(scope="module")
def svd():
    return tiny_components()


# ------------------------------------------------------------------- 1. old VAE attention names in a diffusers folder


def test_stock_folder_vae_uses_the_old_attention_names(sd15):
    keys = set(load_file(str(sd15["stock"] / "vae" / "diffusion_pytorch_model.safetensors")))
    assert {"encoder.mid_block.attentions.0.query.weight", "decoder.mid_block.attentions.0.proj_attn.bias"} <= keys
    assert not any(".to_q." in key for key in keys)


@pytest.mark.parametrize("where", ["stock", "stock/vae"])
def test_old_attention_names_load_as_diffusers_from_pretrained_does(where, sd15):
    folder = sd15["root"] / where
    ours = load_sd15_vae(folder)
    theirs = AutoencoderKL.from_pretrained(folder / "vae" if where == "stock" else folder)
    assert state_dicts_equal(ours.state_dict(), theirs.state_dict())
    assert state_dicts_equal(ours.state_dict(), sd15["vae"].state_dict())
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(ours.encode(image).latent_dist.mean, theirs.encode(image).latent_dist.mean)


def test_stage1_starts_from_a_stock_folder(sd15, tmp_path):
    """What train/stage1.py does with --pretrained_model <stock SD1.5 folder>."""
    torch.manual_seed(3)
    encoder = write_clip_vision_folder(tmp_path / "clip", tiny_clip_vision())
    pipeline = load_geometry_pipeline(None, sd15["stock"], encoder)
    assert state_dicts_equal(pipeline.vae.state_dict(), sd15["vae"].state_dict())


# ------------------------------------------------------------------ 2. one-file VAE / UNet with diffusers key names


@pytest.mark.parametrize("names", ["current", "old"])
def test_diffusers_named_vae_file_in_models_vae(names, sd15, tmp_path):
    """diffusion_pytorch_model.safetensors of a VAE folder copied to models/vae (e.g. as sd-vae-ft-mse.safetensors)."""
    source = tmp_path / "sd-vae-ft-mse"
    sd15["vae"].save_pretrained(source)
    if names == "old":  # stabilityai/sd-vae-ft-mse's own file has the old attention names
        rewrite_safetensors(source / "diffusion_pytorch_model.safetensors", old_attention_names)
    single = tmp_path / "models" / "vae" / "sd-vae-ft-mse.safetensors"
    single.parent.mkdir(parents=True)
    shutil.copy(source / "diffusion_pytorch_model.safetensors", single)
    ours = load_sd15_vae(single, config=sd15["config"])
    assert state_dicts_equal(ours.state_dict(), AutoencoderKL.from_pretrained(source).state_dict())
    assert state_dicts_equal(ours.state_dict(), sd15["vae"].state_dict())


def test_diffusers_named_unet_file(sd15, tmp_path):
    sd15["unet"].save_pretrained(tmp_path / "unet")
    single = tmp_path / "unet.safetensors"
    shutil.copy(tmp_path / "unet" / "diffusion_pytorch_model.safetensors", single)
    ours = load_sd15_unet(single, config=sd15["config"])
    assert state_dicts_equal(ours.state_dict(), UNet2DConditionModel.from_pretrained(tmp_path / "unet").state_dict())


def test_diffusers_named_vae_file_with_a_stray_key_is_refused(sd15, tmp_path):
    state = {**sd15["vae"].state_dict(), "decoder.time_conv_out.weight": torch.zeros(3, 3, 3, 1, 1)}
    path = tmp_path / "temporal.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    message = _error(load_sd15_vae, path, config=sd15["config"])
    assert str(path) in message and "1 unexpected keys: decoder.time_conv_out.weight" in message


# ------------------------------------------------------------------------------ 3. the full OpenAI CLIP model file


def _tiny_clip_model() -> CLIPModel:
    """A CLIPModel whose image tower has the tiny encoder's shape (224 px, patch 14, projection 32)."""
    torch.manual_seed(5)
    small = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2)
    text = dict(small, vocab_size=99, max_position_embeddings=16, bos_token_id=0, eos_token_id=2, pad_token_id=1)
    vision = dict(small, image_size=224, patch_size=14, projection_dim=32)
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=32)).eval()


@pytest.fixture(scope="module")
def full_clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip-vit-large-patch14")
    _tiny_clip_model().save_pretrained(folder)  # config.json (CLIPConfig) + model.safetensors, as the hub repo
    return folder


def test_full_clip_file_has_the_real_layout(full_clip):
    keys = set(load_file(str(full_clip / "model.safetensors")))
    assert {"logit_scale", "text_projection.weight", "visual_projection.weight"} <= keys
    assert any(k.startswith("text_model.encoder.layers.") for k in keys)
    assert any(k.startswith("vision_model.encoder.layers.") for k in keys)


@pytest.mark.parametrize("form", ["folder", "file", "file-old-buffers"])
def test_full_clip_loads_its_image_tower_like_transformers(form, full_clip, tmp_path):
    if form == "folder":
        ours = load_clip_image_encoder(full_clip)
    else:
        single = tmp_path / "clip_vit_l14.safetensors"
        shutil.copy(full_clip / "model.safetensors", single)
        if form == "file-old-buffers":  # older transformers saved both towers' position_ids
            rewrite_safetensors(single, lambda t: {**with_position_ids(t), "text_model.embeddings.position_ids":
                                                   torch.arange(16)[None]})
        ours = load_clip_image_encoder(single, config=full_clip)
    theirs = CLIPVisionModelWithProjection.from_pretrained(full_clip).eval()
    assert state_dicts_equal(ours.state_dict(), theirs.state_dict())
    pixels = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(ours(pixel_values=pixels).image_embeds, theirs(pixel_values=pixels).image_embeds)


def test_real_openai_clip_l14_layout_is_detected_as_vit_l14():
    """openai/clip-vit-large-patch14's model.safetensors, as weightless tensors of its real shapes and names."""
    vision = CLIPModel.config_class.sub_configs["vision_config"].from_pretrained(CLIP_VISION_CONFIGS / "vit_l14")
    text = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                vocab_size=49408, max_position_embeddings=77, hidden_act="quick_gelu")
    config = CLIPConfig(text_config=text, vision_config=vision.to_dict(), projection_dim=768)
    with torch.device("meta"):
        full = CLIPModel(config)
    state = full.state_dict()
    assert sum(v.numel() for v in state.values()) == 427_616_513  # the published size of that CLIP
    tower = image_tower(state)
    detected = _detect_config(tower, Path("clip_vit_l14.safetensors"))
    assert (detected.hidden_size, detected.num_hidden_layers, detected.projection_dim) == (1024, 24, 768)
    with torch.device("meta"):
        weights.check_state_dict(CLIPVisionModelWithProjection(detected), tower, "clip_vit_l14.safetensors")


# ------------------------------------------------------------------------------------- 4. stage-aware CLIP advice


def test_stage1_advice_names_a_vit_l14_and_warns_off_vit_h14():
    assert "ViT-L/14" in HOW_TO_GET_CLIP and "projection 768" in HOW_TO_GET_CLIP
    assert "openai/clip-vit-large-patch14" in HOW_TO_GET_CLIP
    assert "lambdalabs/sd-image-variations-diffusers" in HOW_TO_GET_CLIP
    for sentence in re.split(r"(?<=\.) ", HOW_TO_GET_CLIP):  # ViT-H/14 appears only to say it does not fit
        assert "ViT-H" not in sentence or "does not fit Stage 1" in sentence


def test_stage1_projection_mismatch_names_the_file_and_the_right_encoder(sd15, tmp_path):
    from transformers import CLIPVisionConfig

    vit_h_like = CLIPVisionModelWithProjection(CLIPVisionConfig(
        image_size=224, patch_size=14, hidden_size=40, intermediate_size=37, num_hidden_layers=1,
        num_attention_heads=4, projection_dim=1024))
    folder = write_clip_vision_folder(tmp_path / "clip_vision_h", vit_h_like)
    message = _error(load_geometry_pipeline, None, sd15["stock"], folder)
    assert str(folder) in message and "projects to 1024 dims" in message and "takes 32" in message
    assert "ViT-L/14" in message and "openai/clip-vit-large-patch14" in message


def test_svd_image_encoder_advice_points_at_svd_itself(svd, tmp_path):
    folder = save_diffusers_folder(svd, tmp_path / "svd")
    (folder / "image_encoder" / "model.safetensors").unlink()
    message = _error(load_svd_folder, folder)
    assert str(folder / "image_encoder") in message and "carries its own ViT-H/14" in message
    assert "models/clip_vision" not in message and "ViT-L/14" not in message


# ----------------------------------------------------------------------------------- 5. SVD folder, fp16 files only


@pytest.fixture(scope="module")
def fp16_svd_folder(svd, tmp_path_factory):
    folder = save_diffusers_folder(svd, tmp_path_factory.mktemp("svd-fp16"))
    for part in ("unet", "vae", "image_encoder"):
        for file in (folder / part).glob("*.safetensors"):
            file.unlink()
        copy.deepcopy(getattr(svd, part)).half().save_pretrained(folder / part, variant="fp16")
    return folder


def test_fp16_only_folder_has_the_hub_file_names(fp16_svd_folder):
    names = sorted(p.relative_to(fp16_svd_folder).as_posix() for p in fp16_svd_folder.rglob("*.safetensors"))
    assert names == ["image_encoder/model.fp16.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
                     "vae/diffusion_pytorch_model.fp16.safetensors"]


@pytest.mark.parametrize("dtype", [None, torch.float16])
def test_fp16_only_folder_loads_like_diffusers_and_transformers(dtype, svd, fp16_svd_folder):
    loaded = load_svd_folder(fp16_svd_folder, dtype=dtype)
    assert loaded.unet.dtype == (dtype or torch.float32)
    unet = UNetSpatioTemporalConditionModel.from_pretrained(fp16_svd_folder / "unet", variant="fp16")
    encoder = CLIPVisionModelWithProjection.from_pretrained(fp16_svd_folder / "image_encoder", variant="fp16")
    assert_same_weights(loaded.unet, unet, dtype or torch.float32)
    assert_same_weights(loaded.image_encoder, encoder, dtype or torch.float32)
    assert_same_weights(loaded.vae, copy.deepcopy(svd.vae).half(), dtype or torch.float32)


# -------------------------------------------------------------------------------- 6. SVD single file saved by ComfyUI


def test_comfyui_saved_svd_file_loads(svd, tmp_path):
    layout = comfyui_svd_layout(svd)
    assert CLIP_PREFIX + "vision_model.encoder.layers.0.self_attn.q_proj.weight" in layout
    path = tmp_path / "checkpoints" / "ComfyUI_00001_.safetensors"
    path.parent.mkdir()
    save_file(layout, str(path))
    loaded = load_svd_single_file(path, config_dir=write_config_dir(svd, tmp_path / "configs"))
    for part in ("unet", "vae", "image_encoder"):
        assert_same_weights(getattr(loaded, part), getattr(svd, part))
    pixels = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(loaded.image_encoder(pixel_values=pixels).image_embeds,
                           svd.image_encoder(pixel_values=pixels).image_embeds)


_COMFY_SCRIPT = textwrap.dedent("""
    import sys
    comfy_dir, mode, source, target = sys.argv[1:5]
    sys.argv = [sys.argv[0], "--cpu"]
    sys.path.insert(0, comfy_dir)
    import comfy.options
    comfy.options.enable_args_parsing()
    import comfy.clip_vision, comfy.supported_models
    from safetensors.torch import load_file, save_file
    svd = comfy.supported_models.SVD_img2vid({})
    sd = load_file(source)
    if mode == "save":  # model_base.BaseModel.state_dict_for_saving with the model's own state dicts
        part = lambda p: {k[len(p):]: v for k, v in sd.items() if k.startswith(p)}
        out = svd.process_unet_state_dict_for_saving(part("unet."))
        out.update(svd.process_vae_state_dict_for_saving(part("vae.")))
        out.update(svd.process_clip_vision_state_dict_for_saving(part("clip_vision.")))
    else:  # what comfy.sd.load_checkpoint_guess_config gives load_clipvision_from_sd (convert_keys=True)
        out = comfy.clip_vision.convert_to_transformers(sd, svd.clip_vision_prefix)
        out = {k: v for k, v in out.items() if k.startswith(("vision_model.", "visual_projection."))}
    save_file({k: v.contiguous() for k, v in out.items()}, target)
""")


def _comfyui(mode: str, source: Path, target: Path) -> dict[str, torch.Tensor]:
    """Run ComfyUI's own code on ``source`` in ComfyUI's interpreter (skip where no ComfyUI is installed)."""
    from scripts.comfyui_harness import ComfyInstall

    install = ComfyInstall.from_env()
    if not (install.python.is_file() and (install.comfy_dir / "comfy" / "supported_models.py").is_file()):
        pytest.skip(f"no ComfyUI at {install.comfy_dir} (scripts/setup_comfyui.sh installs one)")
    done = subprocess.run([str(install.python), "-c", _COMFY_SCRIPT, str(install.comfy_dir), mode, str(source),
                           str(target)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return load_file(str(target))


def test_comfyui_peer_saves_and_reads_svd_image_encoders_as_we_do(svd, tmp_path):
    """ComfyUI's own save (ImageOnlyCheckpointSave's prefixing) writes the layout we read, and ComfyUI's own reading
    of both layouts (Stability's OpenCLIP names, its own transformers names) gives the weights we load."""
    original = svd_single_file_state_dict(svd)
    parts = {**{"unet." + k[len("model.diffusion_model."):]: v for k, v in original.items()
                if k.startswith("model.diffusion_model.")},
             **{"vae." + k[len("first_stage_model."):]: v for k, v in original.items()
                if k.startswith("first_stage_model.")},
             **{"clip_vision." + k: v.contiguous() for k, v in svd.image_encoder.state_dict().items()}}
    save_file(parts, str(tmp_path / "parts.safetensors"))
    saved = _comfyui("save", tmp_path / "parts.safetensors", tmp_path / "comfyui_saved.safetensors")
    assert state_dicts_equal(saved, comfyui_svd_layout(svd))
    configs = write_config_dir(svd, tmp_path / "configs")
    ours = load_svd_single_file(tmp_path / "comfyui_saved.safetensors", config_dir=configs).image_encoder
    save_file(original, str(tmp_path / "stability.safetensors"))
    for name in ("comfyui_saved", "stability"):
        theirs = _comfyui("read", tmp_path / f"{name}.safetensors", tmp_path / f"{name}_clip.safetensors")
        assert state_dicts_equal(theirs, ours.state_dict()), name


# ------------------------------------------------------------------------ 7. the old position_ids buffer, every path


def _old_buffer_clip_folder(root: Path) -> Path:
    torch.manual_seed(7)
    folder = write_clip_vision_folder(root / "image_encoder", tiny_clip_vision())
    rewrite_safetensors(folder / "model.safetensors", with_position_ids)
    return folder


def test_position_ids_in_a_transformers_folder(tmp_path):
    folder = _old_buffer_clip_folder(tmp_path)
    assert POSITION_IDS in load_file(str(folder / "model.safetensors"))
    ours = load_clip_image_encoder(folder)
    assert state_dicts_equal(ours.state_dict(), CLIPVisionModelWithProjection.from_pretrained(folder).state_dict())
    assert torch.equal(ours.vision_model.embeddings.position_ids, torch.arange(257)[None])


def test_position_ids_in_an_svd_folder(svd, tmp_path):
    folder = save_diffusers_folder(svd, tmp_path / "svd")
    rewrite_safetensors(folder / "image_encoder" / "model.safetensors", with_position_ids)
    assert_same_weights(load_svd_folder(folder).image_encoder, svd.image_encoder)


def test_position_ids_in_a_comfyui_svd_file(svd, tmp_path):
    path = tmp_path / "svd.safetensors"
    save_file(with_position_ids(comfyui_svd_layout(svd), CLIP_PREFIX), str(path))
    loaded = load_svd_single_file(path, config_dir=write_config_dir(svd, tmp_path / "configs"))
    assert_same_weights(loaded.image_encoder, svd.image_encoder)


# ----------------------------------------------------------------- 8. lean single-file SVD; wrong files from header


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """Every tensor read through SafetensorsFile; reading a whole file at once (load_file) fails the test."""
    names: list[str] = []
    read = weights.SafetensorsFile.__getitem__

    def counting(self, name):
        names.append(name)
        return read(self, name)

    def no_whole_file_read(*args, **kwargs):
        raise AssertionError("the whole file was read at once")

    monkeypatch.setattr(weights.SafetensorsFile, "__getitem__", counting)
    monkeypatch.setattr("safetensors.torch.load_file", no_whole_file_read)
    return names


def test_svd_file_is_read_tensor_by_tensor_into_weightless_models(svd, tmp_path, reads):
    original = svd_single_file_state_dict(svd)
    path = tmp_path / "svd_xt_1_1.safetensors"
    save_file(original, str(path))
    loaded = load_svd_single_file(path, config_dir=write_config_dir(svd, tmp_path / "configs"), dtype=torch.float16)
    assert sorted(reads) == sorted(original)  # each stored tensor read once (the fused q/k/v ones too)
    for part in ("unet", "vae", "image_encoder"):
        module = getattr(loaded, part)
        assert all(p.device.type == "cpu" and p.dtype == torch.float16 for p in module.parameters())
        assert not any(p.requires_grad for p in module.parameters()) and not module.training
        assert_same_weights(module, getattr(svd, part), torch.float16)
    assert torch.equal(loaded.image_encoder.vision_model.embeddings.position_ids, torch.arange(257)[None])


def test_sd15_file_given_as_svd_is_refused_from_its_header(sd15, tmp_path, reads):
    path = write_ldm_single_file(tmp_path / "checkpoints" / "v1-5-pruned-emaonly.safetensors", sd15["unet"],
                                 sd15["vae"])
    message = _error(load_svd_single_file, path)
    assert reads == []
    assert str(path) in message and "Stable Diffusion 1.x checkpoint" in message
    assert "not Stable Video Diffusion" in message and "svd_xt_1_1.safetensors" in message


def test_svd_file_of_another_size_is_refused_from_its_header(svd, tmp_path, reads):
    """The tiny SVD file read with the real SVD-XT configs: every shape differs; nothing is read."""
    path = tmp_path / "svd_tiny.safetensors"
    save_file(svd_single_file_state_dict(svd), str(path))
    message = _error(load_svd_single_file, path)
    assert reads == []
    assert str(path) in message and "shape mismatches" in message
    assert "model.diffusion_model.input_blocks.0.0.weight: file (32, 8, 3, 3) vs model (320, 8, 3, 3)" in message


def test_file_without_a_unet_is_refused_from_its_header(svd, tmp_path, reads):
    path = tmp_path / "clip_vision_h.safetensors"
    save_file({k: v.contiguous() for k, v in svd.image_encoder.state_dict().items()}, str(path))
    message = _error(load_svd_single_file, path)
    assert reads == []
    assert "has no UNet under 'model.diffusion_model.'" in message and "vision_model" in message


@pytest.mark.parametrize("layout", ["stability", "comfyui"])
def test_real_size_svd_headers_pass_the_header_checks(layout):
    """The real SVD-XT 1.1 architecture (shipped configs), weightless: Stability's and ComfyUI's key sets and shapes
    pass every check the loader makes before reading (here without a file: the same checks on meta tensors)."""
    from dreamdance_core.loading.svd import (
        SVD_CONFIG_DIR,
        UNET_PREFIX,
        VAE_PREFIX,
        _check_is_svd,
        _clip_key_map,
        _plan,
        _unet_key_map,
        _vae_key_map,
        build_svd_models,
    )

    real = weights.build_empty(lambda: build_svd_models(SVD_CONFIG_DIR))
    header = svd_single_file_state_dict(real) if layout == "stability" else comfyui_svd_layout(real)
    clip = sum(t.numel() for k, t in header.items() if k.startswith(CLIP_PREFIX))
    unet = sum(t.numel() for k, t in header.items() if k.startswith(UNET_PREFIX))
    assert clip == 632_076_800 and round(unet / 1e9, 2) == 1.52  # OpenCLIP ViT-H/14 image tower; SVD's 1.52 B UNet
    _check_is_svd(header, "svd_xt_1_1.safetensors")
    for model, prefix, key_map in ((real.unet, UNET_PREFIX, _unet_key_map(real.unet)),
                                   (real.vae, VAE_PREFIX, _vae_key_map(real.vae)),
                                   (real.image_encoder, CLIP_PREFIX, _clip_key_map(header))):
        plan = _plan(model, header, prefix, key_map, "svd_xt_1_1.safetensors")
        assert len(plan) == len(model.state_dict())
