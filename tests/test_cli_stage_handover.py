"""The command line releases Stage 1 (its models and maps) before Stage 2 loads and runs."""

from __future__ import annotations

import weakref

import torch

from dreamdance_core.__main__ import _release, main


def test_stage1_is_released_before_stage2_loads_and_runs(tmp_path, monkeypatch):
    from dreamdance_core import demo, sources
    from dreamdance_core.sampling import stage2

    monkeypatch.setattr(demo, "STAGE2_DIR", tmp_path / "no_demo")  # the tiny random video model: quick
    stage1, seen = [], {}
    real_geometry, real_video, real_sample = sources.geometry_pipeline, sources.video_pipeline, stage2.sample_stage2

    def geometry_pipeline(*args, **kwargs):
        pipeline = real_geometry(*args, **kwargs)
        stage1.extend(weakref.ref(x) for x in (pipeline, *pipeline.modules()))
        return pipeline

    def video_pipeline(*args, **kwargs):
        seen["stage1 alive when Stage 2 loads"] = [ref() is not None for ref in stage1]
        return real_video(*args, **kwargs)

    def sample_stage2(pipeline, reference, inputs, options, callback=None):
        seen["stage1 alive when Stage 2 samples"] = [ref() is not None for ref in stage1]
        seen["maps on"] = {str(m.device) for m in inputs.maps.values()}
        return real_sample(pipeline, reference, inputs, options, callback)

    monkeypatch.setattr(sources, "geometry_pipeline", geometry_pipeline)
    monkeypatch.setattr(sources, "video_pipeline", video_pipeline)
    monkeypatch.setattr(stage2, "sample_stage2", sample_stage2)
    assert main(["--frames", "2", "--steps", "1", "--video-steps", "1", "--output", str(tmp_path / "o")]) == 0
    assert len(stage1) == 4  # the pipeline and its three models
    assert seen["stage1 alive when Stage 2 loads"] == [False] * 4
    assert seen["stage1 alive when Stage 2 samples"] == [False] * 4
    assert seen["maps on"] == {"cpu"}


def test_a_model_still_held_elsewhere_is_moved_off_the_device():
    """Something else (a compile cache, a caller) still holds it: it cannot be freed, so it leaves the device."""
    held, dropped = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    moved, original_to = [], held.to

    def to(*args, **kwargs):
        moved.append(kwargs.get("device", args[0] if args else None))
        return original_to(*args, **kwargs)

    held.to = to
    refs = [weakref.ref(held), weakref.ref(dropped)]
    del dropped
    _release(refs, "cpu")
    assert refs[1]() is None and moved == ["cpu"] and held.weight.device.type == "cpu"
