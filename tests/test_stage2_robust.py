"""Robust conditioning: control maps dropped per modality and per frame with configured probabilities."""

import pytest
import torch

from dreamdance_core.robust_conditioning import RobustConditioning


def maps(batch=(), frames=4, names=("pose", "depth", "normal")):
    g = torch.Generator().manual_seed(0)
    return {name: torch.rand(*batch, frames, 3, 4, 4, generator=g) * 1.8 - 0.9 for name in names}


def test_probability_zero_changes_nothing():
    controls = maps()
    out = RobustConditioning({"pose": 0.0, "depth": 0.0, "normal": 0.0})(controls)
    assert all(torch.equal(out[k], controls[k]) for k in controls)


def test_probability_one_zeroes_everything():
    controls = maps(batch=(2,))
    out = RobustConditioning({"pose": 1.0, "depth": 1.0, "normal": 1.0})(controls)
    assert all(torch.all(out[k] == -1.0) for k in controls)
    assert not torch.all(controls["pose"] == -1.0)  # inputs untouched


def test_drop_rates_match_per_modality_and_per_frame():
    probabilities = {"pose": 0.1, "depth": 0.3, "normal": 0.6}
    transform = RobustConditioning(probabilities)
    controls = maps(batch=(4000,), frames=6)
    out = transform(controls, generator=torch.Generator().manual_seed(1))
    for name, p in probabilities.items():
        dropped = (out[name] == -1.0).flatten(-3).all(-1).float()  # [b, f]
        per_frame = dropped.mean(0)
        tolerance = 4 * (p * (1 - p) / 4000) ** 0.5  # 4 sigma
        assert torch.all((per_frame - p).abs() < tolerance), (name, per_frame)
        kept = ~dropped.bool()
        assert torch.equal(out[name][kept], controls[name][kept])  # kept frames are unchanged
    # modalities and frames draw independently
    both = ((out["depth"] == -1).flatten(-3).all(-1) & (out["normal"] == -1).flatten(-3).all(-1)).float().mean()
    assert abs(both.item() - 0.3 * 0.6) < 0.02


def test_unlisted_modalities_are_kept_and_seed_makes_it_reproducible():
    controls = maps(batch=(50,))
    transform = RobustConditioning({"depth": 0.5}, fill_value=0.0)
    a = transform(controls, generator=torch.Generator().manual_seed(3))
    b = transform(controls, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(a[k], b[k]) for k in controls)
    assert torch.equal(a["pose"], controls["pose"]) and torch.equal(a["normal"], controls["normal"])
    assert (a["depth"] == 0.0).any()


def test_bad_configuration_is_reported():
    with pytest.raises(ValueError, match="must be in 0..1"):
        RobustConditioning({"pose": 1.5})
    with pytest.raises(ValueError, match="fix the names"):
        RobustConditioning({"densepose": 0.5})(maps())
    with pytest.raises(ValueError, match="frames, C, H, W"):
        RobustConditioning({"pose": 0.5})({"pose": torch.zeros(3, 4, 4)})
