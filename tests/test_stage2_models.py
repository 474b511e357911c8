"""Stage-2 modules on tiny configs: SVD UNet with residuals, SVD ControlNet, cross-domain controller."""

import pytest
import torch
from diffusers import UNetSpatioTemporalConditionModel

from dreamdance_core.models.controller import ControlMapError, CrossDomainController
from dreamdance_core.models.svd_controlnet import COPIED_MODULES, SVDControlNet
from tests.tiny_svd import (
    TINY_UNET,
    control_maps,
    randomize_,
    tiny_controller,
    tiny_controlnet,
    tiny_unet,
)

FRAMES, H, W = 3, 12, 8  # latent size


def unet_inputs(batch: int = 2):
    g = torch.Generator().manual_seed(0)
    return dict(
        sample=torch.randn(batch, FRAMES, 8, H, W, generator=g),
        timestep=torch.tensor(0.7),
        encoder_hidden_states=torch.randn(batch, 1, 32, generator=g),
        added_time_ids=torch.tensor([[6.0, 127.0, 0.02]]).repeat(batch, 1),
    )


def guidance(batch: int = 2):
    return torch.randn(batch * FRAMES, 32, H, W, generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def test_controlled_unet_without_residuals_is_diffusers_svd():
    unet = tiny_unet()
    reference = UNetSpatioTemporalConditionModel(**TINY_UNET).eval()
    reference.load_state_dict(unet.state_dict(), strict=True)
    inputs = unet_inputs()
    assert torch.equal(unet(**inputs).sample, reference(**inputs).sample)


@torch.no_grad()
def test_fresh_controlnet_residuals_are_zero_and_leave_the_unet_unchanged():
    unet = tiny_unet()
    controlnet = tiny_controlnet(unet)
    inputs = unet_inputs()
    down, mid = controlnet(**inputs, controlnet_cond=guidance(), return_dict=False)
    assert all(not r.any() for r in down) and not mid.any()
    plain = unet(**inputs).sample
    controlled = unet(**inputs, down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
    assert torch.equal(plain, controlled)


@torch.no_grad()
def test_trained_controlnet_changes_the_output_and_strength_scales_residuals():
    unet = tiny_unet()
    controlnet = randomize_(tiny_controlnet(unet))
    inputs = unet_inputs()
    down, mid = controlnet(**inputs, controlnet_cond=guidance(), return_dict=False)
    half_down, half_mid = controlnet(**inputs, controlnet_cond=guidance(), conditioning_scale=0.5, return_dict=False)
    torch.testing.assert_close(half_mid, mid * 0.5)
    for full, half in zip(down, half_down):
        torch.testing.assert_close(half, full * 0.5)
    plain = unet(**inputs).sample
    controlled = unet(**inputs, down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
    assert (plain - controlled).abs().max() > 1e-4


def test_from_unet_copies_the_encoder_weights_and_config():
    unet = tiny_unet()
    controlnet = tiny_controlnet(unet)
    for name in COPIED_MODULES:
        ours, theirs = getattr(controlnet, name).state_dict(), getattr(unet, name).state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert controlnet.config.block_out_channels == unet.config.block_out_channels
    # one zero link per skip connection of the UNet
    with torch.no_grad():
        down, _ = controlnet(**unet_inputs(1), controlnet_cond=guidance(1), return_dict=False)
    assert len(down) == len(controlnet.controlnet_down_blocks)


def test_unet_rejects_residuals_for_another_config():
    unet = tiny_unet()
    controlnet = tiny_controlnet(unet)
    inputs = unet_inputs()
    with torch.no_grad():
        down, mid = controlnet(**inputs, controlnet_cond=guidance(), return_dict=False)
        with pytest.raises(ValueError, match="skip connections"):
            unet(**inputs, down_block_additional_residuals=down[:-1], mid_block_additional_residual=mid)


def test_controlnet_checks_its_arguments():
    with pytest.raises(ValueError, match="3 x addition_time_embed_dim"):
        SVDControlNet(**{**{k: TINY_UNET[k] for k in ("block_out_channels", "down_block_types")},
                         "addition_time_embed_dim": 8, "projection_class_embeddings_input_dim": 16})
    controlnet = tiny_controlnet(tiny_unet())
    with pytest.raises(ValueError, match="guidance feature has shape"):
        controlnet(**unet_inputs(), controlnet_cond=torch.zeros(2 * FRAMES, 16, H, W))


# --------------------------------------------------------------------------------------------------------- controller


def maps(frames=FRAMES, **kw):
    return control_maps(frames, width=W * 2, height=H * 2, **kw)


def test_controller_output_shape_and_frame_independence():
    controller = tiny_controller()
    randomize_(controller.geometry, seed=9, scale=0.3)
    controls = maps()
    with torch.no_grad():
        out = controller(controls)
        assert out.shape == (FRAMES, 32, H, W)
        changed = {k: v.clone() for k, v in controls.items()}
        changed["depth"][1] = -changed["depth"][1]
        other = controller(changed)
    assert torch.equal(out[0], other[0]) and torch.equal(out[2], other[2])
    assert not torch.allclose(out[1], other[1])


@pytest.mark.parametrize("tokens", ["pixel", "frame"])
def test_with_geometry_attention_every_modality_feature_depends_on_all_modalities(tokens):
    controller = tiny_controller(geometry_tokens=tokens)
    randomize_(controller.geometry, seed=9, scale=0.3)  # a "trained" fusion (fresh: zero output projection)
    base = maps()
    with torch.no_grad():
        reference = controller.encode(base)  # [f, m, c, h, w]
        for name in controller.modalities:
            changed = dict(base, **{name: -base[name]})
            features = controller.encode(changed)
            for index in range(len(controller.modalities)):
                assert not torch.allclose(features[:, index], reference[:, index]), (name, index)


def test_without_geometry_attention_modalities_stay_separate_until_the_sum():
    controller = tiny_controller(geometry_attention=False)
    base = maps()
    with torch.no_grad():
        reference = controller.encode(base)
        features = controller.encode(dict(base, depth=-base["depth"]))
    assert torch.equal(features[:, 0], reference[:, 0]) and torch.equal(features[:, 2], reference[:, 2])
    assert not torch.allclose(features[:, 1], reference[:, 1])


def test_modality_strength_zero_is_the_black_map_and_strength_interpolates_the_feature():
    """Strength 0 = that modality's black (absent, robust-conditioning) map; s moves along F(black) -> F(map)."""
    controller = tiny_controller()
    randomize_(controller.geometry, seed=9, scale=0.3)
    base = maps()
    black = dict(base, normal=torch.full_like(base["normal"], -1.0))
    with torch.no_grad():
        a = controller(base, {"normal": 0.0})
        b = controller(dict(base, normal=-base["normal"]), {"normal": 0.0})
        fed_black = controller(black)
        c = controller(base)
        f_map, f_black = controller.encoders["normal"](base["normal"]), controller.encoders["normal"](black["normal"])
        half = controller.encode_modality("normal", base["normal"], 0.25)
    assert torch.equal(a, b)
    assert torch.equal(a, fed_black)
    assert not torch.allclose(a, c)
    torch.testing.assert_close(half, f_black + 0.25 * (f_map - f_black))
    assert torch.equal(controller.encode_modality("normal", base["normal"], 1.0), f_map)
    with pytest.raises(ControlMapError, match="unknown modalities"):
        controller(base, {"densepose": 1.0})


def test_an_extra_modality_is_a_config_change():
    controller = tiny_controller(modalities=("pose", "depth", "normal", "densepose"))
    with torch.no_grad():
        out = controller(maps(names=("pose", "depth", "normal", "densepose")))
    assert out.shape == (FRAMES, 32, H, W)
    with pytest.raises(ControlMapError, match="densepose"):
        controller(maps())


def test_controller_rejects_bad_maps():
    controller = tiny_controller()
    controls = maps()
    with pytest.raises(ControlMapError, match="different frame counts"):
        controller.check_maps(dict(controls, depth=controls["depth"][:2]))
    with pytest.raises(ControlMapError, match="different sizes"):
        controller.check_maps(dict(controls, normal=torch.zeros(FRAMES, 3, H * 2, W * 2 + 2)))
    with pytest.raises(ControlMapError, match="requested"):
        controller.check_maps(controls, size=(W * 2 + 8, H * 2))
    with pytest.raises(ControlMapError, match="at least 1 frame"):
        controller.check_maps({k: v[:0] for k, v in controls.items()})
    with pytest.raises(ControlMapError, match=r"\[frames, 3, height, width\]"):
        controller.check_maps(dict(controls, pose=controls["pose"][0]))
    with pytest.raises(ControlMapError, match="divisible"):
        controller.check_maps({k: torch.zeros(1, 3, 7, 8) for k in controls})


def test_controller_checks_its_arguments():
    with pytest.raises(ValueError, match="unique"):
        CrossDomainController(modalities=("pose", "pose"))
    with pytest.raises(ValueError, match="at least one modality"):
        CrossDomainController(modalities=())
    with pytest.raises(ValueError, match="divisible by num_heads"):
        CrossDomainController(out_channels=30, attention_heads=4)
    with pytest.raises(ValueError, match="geometry_tokens"):
        CrossDomainController(geometry_tokens="token")


def test_controlnet_gradient_checkpointing_gives_the_same_gradients():
    from dreamdance_core.tiny import tiny_svd_unet

    def gradients(checkpointing: bool) -> torch.Tensor:
        unet = tiny_svd_unet()
        controlnet = tiny_controlnet(unet).train()
        randomize_(controlnet, seed=7)
        if checkpointing:
            controlnet.enable_gradient_checkpointing()
            assert controlnet.is_gradient_checkpointing
        g = torch.Generator().manual_seed(0)
        sample = torch.randn(1, 2, 8, 8, 8, generator=g)
        down, mid = controlnet(sample, torch.tensor(10.0), torch.randn(1, 1, 32, generator=g),
                               torch.randn(1, 3, generator=g),
                               controlnet_cond=torch.randn(2, 32, 8, 8, generator=g), return_dict=False)
        (sum(d.square().mean() for d in down) + mid.square().mean()).backward()
        return torch.cat([p.grad.flatten() for p in controlnet.parameters() if p.grad is not None])

    plain, checkpointed = gradients(False), gradients(True)
    assert plain.abs().max() > 0
    torch.testing.assert_close(checkpointed, plain, rtol=0, atol=1e-6)
