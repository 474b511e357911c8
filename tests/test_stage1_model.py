"""Stage-1 model: zero-initialised paths, geometry/temporal mixing, reference injection, save/load."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from dreamdance_core.loading import WeightFileError
from dreamdance_core.models.stage1 import GeometryDiffusionModel, domain_embedding
from tests.tiny_stage1 import CROSS_ATTENTION_DIM, randomize_, tiny_stage1, tiny_unet

M, F, H, W = 3, 2, 8, 8  # modalities, frames, latent size


def batch(groups: int = 1, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n = groups * M * F
    return dict(
        sample=torch.randn(n, 4, H, W, generator=g),
        timestep=torch.tensor(500),
        encoder_hidden_states=torch.randn(n, 1, CROSS_ATTENTION_DIM, generator=g),
        pose_features=torch.zeros(n, 32, H, W),
        domain=torch.arange(M).repeat_interleave(F).repeat(groups),
    )


def run(model, inputs, **kwargs):
    with torch.no_grad():
        return model(**inputs, num_modalities=M, num_frames=F, **kwargs)


def reference_features(model, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(1, 4, H, W, generator=g)
    embeds = torch.randn(1, 1, CROSS_ATTENTION_DIM, generator=g)
    with torch.no_grad():
        return model.encode_reference(latents, embeds)


def test_fresh_model_reproduces_the_base_unet():
    torch.manual_seed(0)
    base = tiny_unet().eval()
    model = GeometryDiffusionModel.from_base_unet(base, pose_guider_channels=(8, 8, 16, 16), attention_heads=4).eval()
    inputs = batch()
    base.set_attn_processor(AttnProcessor2_0())
    with torch.no_grad():
        expected = base(
            inputs["sample"], inputs["timestep"], encoder_hidden_states=inputs["encoder_hidden_states"]
        ).sample
    # pose guider, domain embedding, geometry and temporal attention are all on, all zero-initialised
    pose = model.encode_pose(torch.randn(M * F, 3, 8 * H, 8 * W))
    assert torch.count_nonzero(pose) == 0
    out = run(model, {**inputs, "pose_features": pose})
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_zero_initialised_geometry_and_temporal_attention_add_exactly_zero():
    model = tiny_stage1()
    randomize_(model.pose_guider)  # make other paths active; the adapter stays freshly zero-initialised
    inputs = batch()
    model.use_geometry_attention = model.use_temporal_attention = True
    on = run(model, inputs)
    model.use_geometry_attention = model.use_temporal_attention = False
    off = run(model, inputs)
    assert torch.equal(on, off)


def _perturb(inputs, modality: int, frame: int):
    changed = dict(inputs)
    sample = inputs["sample"].clone()
    sample[modality * F + frame] += 1.0
    changed["sample"] = sample
    return changed


def _output(out, modality: int, frame: int):
    return out[modality * F + frame]


@pytest.mark.parametrize("geometry", [True, False])
def test_geometry_attention_mixes_modalities_only_when_on(geometry):
    model = tiny_stage1()
    randomize_(model.adapter, scale=0.2)
    model.use_geometry_attention = geometry
    model.use_temporal_attention = True
    inputs = batch()
    depth, normal = 2, 1
    before = run(model, inputs)
    after = run(model, _perturb(inputs, depth, 0))
    changed = (_output(after, normal, 0) - _output(before, normal, 0)).abs().max()
    if geometry:
        assert changed > 1e-4
    else:
        assert changed == 0  # the normal branch never sees the depth latent


@pytest.mark.parametrize("temporal", [True, False])
def test_temporal_attention_mixes_frames_only_when_on(temporal):
    model = tiny_stage1()
    randomize_(model.adapter, scale=0.2)
    model.use_geometry_attention = False
    model.use_temporal_attention = temporal
    inputs = batch()
    before = run(model, inputs)
    after = run(model, _perturb(inputs, 0, 0))
    changed = (_output(after, 0, 1) - _output(before, 0, 1)).abs().max()
    assert (changed > 1e-4) if temporal else (changed == 0)


def test_reference_injection_depends_on_the_reference_and_masks_dropped_samples():
    model = tiny_stage1()
    inputs = batch(groups=2)
    per_group = M * F
    index = torch.tensor([0] * per_group + [-1] * per_group)
    first = run(model, inputs, reference=reference_features(model, seed=3), reference_index=index)
    second = run(model, inputs, reference=reference_features(model, seed=4), reference_index=index)
    without = run(model, inputs, reference=None)
    # the conditional group depends on which reference is injected ...
    assert (first[:per_group] - second[:per_group]).abs().max() > 1e-4
    # ... the group whose reference is dropped is exactly the no-reference computation
    torch.testing.assert_close(first[per_group:], without[per_group:], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(first[per_group:], second[per_group:], rtol=0, atol=0)


def test_reference_features_come_from_every_self_attention_layer():
    model = tiny_stage1()
    features = reference_features(model)
    assert set(features) == set(model.adapter.config.layer_names)
    assert all(f.shape[0] == 1 for f in features.values())


def test_domain_embedding_is_positional_encoded_one_hot():
    emb = domain_embedding(torch.tensor([0, 1, 2]))
    assert emb.shape == (3, 6)
    assert torch.allclose(emb[:, :3], torch.sin(torch.eye(3)))
    assert torch.allclose(emb[:, 3:], torch.cos(torch.eye(3)))


def test_set_trainable_selects_exactly_one_group():
    model = tiny_stage1()
    groups = model.parameter_groups()
    model.set_trainable("geometry")
    assert all(p.requires_grad for p in groups["geometry"])
    assert not any(p.requires_grad for p in groups["temporal"] + groups["base"])
    with pytest.raises(ValueError, match="unknown trainable group"):
        model.set_trainable("everything")


def test_layout_mismatch_is_a_clear_error():
    model = tiny_stage1()
    inputs = batch()
    with pytest.raises(ValueError, match="modalities"):
        model(**inputs, num_modalities=M, num_frames=4)


def test_save_load_round_trip_is_bit_exact(tmp_path):
    model = tiny_stage1()
    for part in (model.adapter, model.pose_guider):
        randomize_(part, scale=0.1)
    model.save_pretrained(tmp_path / "stage1")
    first = GeometryDiffusionModel.from_pretrained(tmp_path / "stage1")
    second = GeometryDiffusionModel.from_pretrained(tmp_path / "stage1")
    expected = model.state_dict()
    loaded = first.state_dict()
    assert expected.keys() == loaded.keys()
    assert all(torch.equal(expected[k], loaded[k]) for k in expected)
    inputs = batch()
    inputs["pose_features"] = torch.randn_like(inputs["pose_features"])
    reference = reference_features(first)
    index = torch.zeros(M * F, dtype=torch.long)
    assert torch.equal(
        run(first, inputs, reference=reference, reference_index=index),
        run(second, inputs, reference=reference_features(second), reference_index=index),
    )
    torch.testing.assert_close(
        run(first, inputs, reference=reference, reference_index=index),
        run(model, inputs, reference=reference_features(model), reference_index=index),
        rtol=1e-4, atol=1e-4,
    )


def test_truncated_weight_file_is_a_clear_error(tmp_path):
    tiny_stage1().save_pretrained(tmp_path)
    weights = tmp_path / "adapter" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(WeightFileError, match="truncated or corrupt"):
        GeometryDiffusionModel.from_pretrained(tmp_path)


def test_missing_keys_are_listed(tmp_path):
    from safetensors.torch import load_file, save_file

    tiny_stage1().save_pretrained(tmp_path)
    weights = tmp_path / "pose_guider" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    state.pop("conv_out.bias")
    save_file(state, weights)
    with pytest.raises(WeightFileError, match=r"1 missing keys: conv_out\.bias"):
        GeometryDiffusionModel.from_pretrained(tmp_path)


def test_missing_folder_says_what_belongs_there(tmp_path):
    with pytest.raises(WeightFileError, match="reference_unet, denoising_unet, pose_guider, adapter"):
        GeometryDiffusionModel.from_pretrained(tmp_path / "nope")


def test_gradient_checkpointing_gives_the_same_gradients():
    """Our processors read a shared state; the checkpointing function must restore it for the recomputation."""

    def gradients(checkpointing: bool) -> torch.Tensor:
        model = tiny_stage1(0).train()
        torch.manual_seed(1)
        with torch.no_grad():
            for parameter in model.parameters():  # make the zero-initialised paths active
                parameter.add_(torch.randn_like(parameter) * 0.05)
        if checkpointing:
            model.enable_gradient_checkpointing()
            assert model.denoising_unet.is_gradient_checkpointing and model.reference_unet.is_gradient_checkpointing
        g = torch.Generator().manual_seed(0)
        groups, m, f = 2, 3, 2
        batch = groups * m * f
        reference = model.encode_reference(
            torch.randn(groups, 4, 8, 8, generator=g), torch.randn(groups, 1, 32, generator=g)
        )
        out = model(
            torch.randn(batch, 4, 8, 8, generator=g), torch.tensor(500), torch.randn(batch, 1, 32, generator=g),
            model.encode_pose(torch.randn(batch, 3, 64, 64, generator=g)),
            torch.arange(m).repeat_interleave(f).repeat(groups),
            num_modalities=m, num_frames=f, reference=reference,
            reference_index=torch.tensor([0, -1]).repeat_interleave(m * f),
        )
        out.square().mean().backward()
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    plain, checkpointed = gradients(False), gradients(True)
    assert plain.abs().max() > 0
    torch.testing.assert_close(checkpointed, plain, rtol=0, atol=1e-6)


def test_the_noise_schedule_travels_with_the_weights(tmp_path):
    from dreamdance_core.loading import WeightFileError
    from dreamdance_core.models.stage1 import SD15_NOISE_SCHEDULE, noise_schedule

    model = tiny_stage1()
    model.save_pretrained(tmp_path / "sd15")
    assert GeometryDiffusionModel.from_pretrained(tmp_path / "sd15").noise_schedule == SD15_NOISE_SCHEDULE
    (tmp_path / "sd15" / "scheduler" / "scheduler_config.json").unlink()  # folders from before: SD1.5's schedule
    assert GeometryDiffusionModel.from_pretrained(tmp_path / "sd15").noise_schedule == SD15_NOISE_SCHEDULE
    model.noise_schedule = noise_schedule("v_prediction", zero_terminal_snr=True)
    model.save_pretrained(tmp_path / "v")
    loaded = GeometryDiffusionModel.from_pretrained(tmp_path / "v").noise_schedule
    assert loaded["prediction_type"] == "v_prediction" and loaded["rescale_betas_zero_snr"] is True
    (tmp_path / "v" / "scheduler" / "scheduler_config.json").write_text("{broken")
    with pytest.raises(WeightFileError, match="scheduler config"):
        GeometryDiffusionModel.from_pretrained(tmp_path / "v")
    with pytest.raises(ValueError, match="v_prediction"):
        noise_schedule("epsilon", zero_terminal_snr=True)
    with pytest.raises(ValueError, match="prediction_type"):
        noise_schedule("sample")
