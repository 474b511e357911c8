"""dreamdance_core.sources: the one 'weights / demo / tiny random' choice of the nodes, the CLI and the benches."""

from __future__ import annotations

import pytest

from dreamdance_core import demo, sources
from dreamdance_core.pipelines import GeometryPipeline, VideoPipeline


def test_default_is_the_weights_given_else_the_shipped_demo_else_tiny():
    info = demo.stage1_demo()
    assert sources.default_source(True, info) == sources.WEIGHTS
    assert sources.default_source(True, None) == sources.WEIGHTS
    assert sources.default_source(False, info) == sources.DEMO
    assert sources.default_source(False, None) == sources.TINY


def test_tiny_builds_random_pipelines_of_both_stages_from_the_seed():
    geometry = sources.geometry_pipeline(sources.TINY, seed=1)
    video = sources.video_pipeline(sources.TINY, seed=1)
    assert isinstance(geometry, GeometryPipeline) and geometry.random_weights
    assert isinstance(video, VideoPipeline) and video.random_weights
    again = sources.geometry_pipeline(sources.TINY, seed=1)
    first, second = geometry.model.state_dict(), again.model.state_dict()
    assert all(first[k].equal(second[k]) for k in first)


def test_a_missing_demo_names_its_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "STAGE1_DIR", tmp_path / "no_stage1")
    monkeypatch.setattr(demo, "STAGE2_DIR", tmp_path / "no_stage2")
    with pytest.raises(FileNotFoundError, match="no_stage1"):
        sources.geometry_pipeline(sources.DEMO)
    with pytest.raises(FileNotFoundError, match="no_stage2"):
        sources.video_pipeline(sources.DEMO)


def test_the_demo_loads_the_shipped_checkpoint_through_the_real_loader(monkeypatch):
    from dreamdance_core.loading import stage1

    if demo.stage1_demo() is None:
        pytest.skip("this copy carries no Stage-1 demo checkpoint")
    seen = []
    monkeypatch.setattr(stage1, "load_geometry_pipeline", lambda *args, **kwargs: seen.append(args) or "loaded")
    assert sources.geometry_pipeline(sources.DEMO) == "loaded"
    assert seen == [(demo.stage1_demo().path,)]


def test_unknown_sources_and_stage2_without_weights_are_refused():
    with pytest.raises(ValueError, match="unknown model source 'random'"):
        sources.geometry_pipeline("random")
    with pytest.raises(ValueError, match="Stage-2 weights"):
        sources.video_pipeline(sources.WEIGHTS)
