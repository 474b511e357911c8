"""Our models under ComfyUI's own memory manager (``comfy.model_management``), checked in the real ComfyUI 0.3.75.

tests/comfyui/model_management_probe.py runs in ComfyUI's interpreter with ``--cpu``: it loads the pack as ComfyUI
does, runs the geometry and animate nodes on the tiny random models, and reports what ComfyUI's
``current_loaded_models``, ``load_models_gpu`` and ``free_memory`` saw. On the CPU ComfyUI never frees memory for a
load (``load_models_gpu`` calls ``free_memory`` for non-CPU devices only), so eviction is shown by calling
``free_memory`` as ``load_models_gpu`` does on a GPU.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from scripts.comfyui_harness import PACK_FOLDER_NAME, REPO_ROOT, ComfyInstall

PROBE = Path(__file__).with_name("model_management_probe.py")
STAGE1, STAGE2 = "DreamDanceGeometryPipeline", "DreamDanceVideoPipeline"  # what ComfyUI's list shows for ours


@pytest.fixture(scope="module")
def facts(comfyui_install: ComfyInstall, tmp_path_factory: pytest.TempPathFactory) -> dict:
    link = tmp_path_factory.mktemp("probe") / PACK_FOLDER_NAME  # the pack through a renamed folder, as elsewhere
    link.symlink_to(REPO_ROOT, target_is_directory=True)
    done = subprocess.run([str(comfyui_install.python), str(PROBE)], cwd=comfyui_install.comfy_dir,
                          capture_output=True, text=True, check=False,
                          env=dict(os.environ, DREAMDANCE_PACK_DIR=str(link)), timeout=600)
    assert done.returncode == 0, f"the probe failed:\n{done.stderr[-6000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_each_run_loads_our_pipeline_through_load_models_gpu_fully(facts):
    ours = [call for call in facts["load_calls"] if call["models"][0] in (STAGE1, STAGE2)]
    assert [call["models"] for call in ours] == [[STAGE1]] * 3 + [[STAGE2], [STAGE1]]  # one call per node run
    assert all(call["force_full_load"] for call in ours)  # no lowvram partial load: our layers are no comfy.ops


def test_each_load_asks_comfyui_for_room_for_our_activations(facts):
    """``memory_required`` (dreamdance_core.memory) reaches ComfyUI's own load_models_gpu, which frees that much
    (plus its reserve) on a GPU before loading, as for its own sampling (comfy/sampler_helpers.py)."""
    ours = [call for call in facts["load_calls"] if call["models"][0] in (STAGE1, STAGE2)]
    estimates = facts["memory_estimates"]
    assert estimates["geometry"] > 0 and estimates["animate"] > 0
    expected = [estimates["geometry"]] * 3 + [estimates["animate"], estimates["geometry"]]
    assert [call["memory_required"] for call in ours] == expected


def test_comfyui_counts_our_model_while_it_samples(facts):
    first_geometry, animate = facts["during"][0], facts["during"][3]
    assert (first_geometry["sampler"], animate["sampler"]) == ("geometry", "animate")
    assert first_geometry["loaded"] == [STAGE1, "Linear"]  # ours first, the model loaded before still listed
    assert animate["loaded"] == [STAGE2, STAGE1]
    for run, state_bytes in ((first_geometry, facts["geometry_state_bytes"]), (animate, facts["video_state_bytes"])):
        assert run["entries"] == 1
        assert run["size"] == run["loaded_bytes"] == state_bytes  # counted in full, all of it loaded
        assert run["weights_on"] == [run["load_device"]] == [facts["device"]]


def test_a_kept_model_stays_loaded_once_across_runs(facts):
    assert facts["before"] == ["Linear"]
    assert facts["after_geometry"] == [STAGE1, "Linear"]  # keep_loaded on: still loaded after the run
    assert facts["same_patcher_after_rerun"] and facts["geometry_entries_after_rerun"] == 1


def test_free_memory_evicts_the_others_and_ours(facts):
    assert facts["free_memory_keeping_ours"] == ["Linear"]  # room for ours: the other model goes
    assert facts["after_free_keeping_ours"] == [STAGE1]
    assert facts["free_memory_all"] == [STAGE1]  # room for another model: ours goes too
    assert facts["after_free_all"] == [] and facts["geometry_loaded_bytes_after_eviction"] == 0
    assert facts["after_geometry_reloaded"] == [STAGE1]  # needed again: loaded again


def test_keep_loaded_off_unloads_ours_after_the_run_and_nothing_else(facts):
    assert facts["frames"] == [2, 48, 32, 3]
    assert facts["after_animate"] == [STAGE1] and facts["video_loaded_bytes_after"] == 0
    assert facts["during"][4]["loaded"] == [STAGE1, STAGE1]  # a second Stage-1 pipeline (keep_loaded off) ran...
    assert facts["after_geometry_keep_loaded_off"] == [STAGE1]  # ...and left; the kept one stays


def test_a_dropped_pipeline_leaves_comfyui_s_list(facts):
    assert facts["after_dropping_the_kept_pipeline"] == [] and facts["dead_entries"] == 0


def test_a_compiled_module_is_not_recompiled_when_comfyui_reloads_it(facts):
    assert facts["compile"] == {"runs": 3, "recompiled": False, "equal": True, "loaded_after": []}
