"""The whole Stage-1 pipeline from the weights a user has (tiny formats written by the tests)."""

from __future__ import annotations

import pytest
import torch

from dreamdance_core.loading import WeightFileError
from dreamdance_core.loading.stage1 import load_geometry_pipeline
from dreamdance_core.models.stage1 import GeometryDiffusionModel
from tests.tiny_sd15 import state_dicts_equal, write_clip_vision_folder, write_diffusers_folder, write_ldm_single_file
from tests.tiny_stage1 import randomize_, tiny_image_encoder, tiny_unet, tiny_vae


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    unet, vae, encoder = tiny_unet(), tiny_vae(), tiny_image_encoder()
    write_diffusers_folder(root / "sd15", unet, vae)
    write_ldm_single_file(root / "sd15.safetensors", unet, vae)
    write_diffusers_folder(root / "config", unet, vae, configs_only=True)
    write_clip_vision_folder(root / "clip", encoder)
    stage1 = GeometryDiffusionModel.from_base_unet(unet, pose_guider_channels=(8, 8, 16, 16), attention_heads=4)
    randomize_(stage1.adapter)
    stage1.save_pretrained(root / "stage1")
    return root, unet, vae, encoder, stage1


def test_dreamdance_weights_plus_base_folder(weights):
    root, _, vae, encoder, stage1 = weights
    pipeline = load_geometry_pipeline(root / "stage1", root / "sd15", root / "clip")
    assert state_dicts_equal(pipeline.model.state_dict(), stage1.state_dict())
    assert state_dicts_equal(pipeline.vae.state_dict(), vae.state_dict())
    assert state_dicts_equal(pipeline.image_encoder.state_dict(), encoder.state_dict())
    assert not pipeline.random_weights


def test_base_only_starts_the_dreamdance_parts_from_sd15(weights):
    root, unet, _, _, _ = weights
    pipeline = load_geometry_pipeline(None, root / "sd15", root / "clip")
    assert state_dicts_equal(pipeline.model.reference_unet.state_dict(), unet.state_dict())
    assert all(torch.count_nonzero(p) == 0 for p in pipeline.model.pose_guider.conv_out.parameters())


def test_self_contained_stage1_folder(weights, tmp_path):
    root, _, vae, encoder, stage1 = weights
    folder = tmp_path / "demo"
    stage1.save_pretrained(folder)
    vae.save_pretrained(folder / "vae")
    encoder.save_pretrained(folder / "image_encoder")
    pipeline = load_geometry_pipeline(folder)
    assert state_dicts_equal(pipeline.vae.state_dict(), vae.state_dict())


def test_missing_pieces_say_what_to_add(weights):
    root = weights[0]
    with pytest.raises(WeightFileError, match="needs weights"):
        load_geometry_pipeline()
    with pytest.raises(WeightFileError, match="no vae/ folder"):
        load_geometry_pipeline(root / "stage1", None, root / "clip")
    with pytest.raises(WeightFileError, match="CLIP image encoder"):
        load_geometry_pipeline(root / "stage1", root / "sd15")


def test_image_encoder_of_the_wrong_width_is_refused(weights, tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    root = weights[0]
    wide = CLIPVisionModelWithProjection(CLIPVisionConfig(
        image_size=224, patch_size=14, hidden_size=32, intermediate_size=37, num_hidden_layers=1,
        num_attention_heads=4, projection_dim=48))
    write_clip_vision_folder(tmp_path / "wide", wide)
    with pytest.raises(WeightFileError, match="projects to 48"):
        load_geometry_pipeline(root / "stage1", root / "sd15", tmp_path / "wide")
