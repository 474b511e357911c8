"""Run by ComfyUI's own interpreter (cwd: the ComfyUI folder) for tests/comfyui/test_model_management.py.

Loads the pack the way ComfyUI 0.3.75's ``nodes.load_custom_node`` does, runs the geometry and animate nodes on the
tiny random models under ComfyUI's real ``comfy.model_management`` (``--cpu``), and prints what it saw as one JSON
line: which models ComfyUI counted as loaded during and after each run, the ``load_models_gpu`` calls, what
``free_memory`` unloaded. The test asserts on those facts; this script asserts nothing.

    cd ComfyUI && DREAMDANCE_PACK_DIR=/path/to/pack python /path/to/model_management_probe.py
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import sys

sys.argv = [sys.argv[0], "--cpu"]  # before comfy.model_management is imported, or torch asks for CUDA
sys.path.insert(0, os.getcwd())
import comfy.options  # noqa: E402

comfy.options.enable_args_parsing()
import comfy.model_management as mm  # noqa: E402
import comfy.model_patcher  # noqa: E402
import torch  # noqa: E402

W, H, FRAMES = 32, 48, 2


def load_pack(folder: str):
    """Import the pack as ComfyUI does: module name = folder path with '.' -> '_x_', its __init__ run."""
    spec = importlib.util.spec_from_file_location(folder.replace(".", "_x_"), os.path.join(folder, "__init__.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def loaded_names() -> list[str]:
    """ComfyUI's list of loaded models, as the class names of what each patcher wraps (newest first)."""
    return [type(entry.model.model).__name__ for entry in mm.current_loaded_models if entry.model is not None]


def entries(patcher) -> list:
    return [entry for entry in mm.current_loaded_models if entry.model is patcher]


def state_bytes(modules) -> int:
    return sum(t.nelement() * t.element_size() for m in modules for t in m.state_dict().values())


def compile_across_reloads(pack) -> dict:
    """A ``torch.compile``-d module under the pack's patcher (``nodes._common.model_patcher``), run, unloaded by
    ComfyUI and loaded again (the patcher sets and removes attributes on its layers and moves them): recompiled?"""
    import torch._dynamo

    common = importlib.import_module(f"{pack.__name__}.nodes._common")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.GroupNorm(2, 8), torch.nn.SiLU(),
                              torch.nn.Conv2d(8, 3, 1))

    class Pipeline:  # what model_patcher() needs of a pipeline
        def modules(self):
            return (net,)

    pipeline, x, outputs = Pipeline(), torch.rand(1, 3, 16, 16), []
    torch._dynamo.reset()
    recompiled = False
    for index in range(3):
        with common.run_on_device(pipeline, keep_loaded=False):  # keep_loaded off: unloaded after each run
            torch._dynamo.config.error_on_recompile = index > 0
            try:
                outputs.append(torch.compile(net, backend="aot_eager", dynamic=False)(x))
            except Exception as error:  # dynamo raises RecompileError (wrapped) on a recompile
                recompiled = repr(error)[:300]
                break
            finally:
                torch._dynamo.config.error_on_recompile = False
    return {"runs": len(outputs), "recompiled": recompiled, "equal": all(torch.equal(o, outputs[0]) for o in outputs),
            "loaded_after": loaded_names()}


def memory_estimates(pack) -> dict:
    """The pack's activation estimates (``dreamdance_core.memory``) for the runs below: what the nodes pass."""
    memory = importlib.import_module(f"{pack.__name__}.dreamdance_core.memory")
    stage1 = importlib.import_module(f"{pack.__name__}.dreamdance_core.sampling.stage1")
    stage2 = importlib.import_module(f"{pack.__name__}.dreamdance_core.sampling.stage2")
    geometry = memory.stage1_memory(stage1.Stage1Options(steps=1, guidance=(2.0, 2.0, 2.0)), FRAMES, W, H,
                                    torch.float32)
    animate = memory.stage2_memory(stage2.Stage2Options(width=W, height=H, num_frames=FRAMES, steps=1, max_cfg=2.0,
                                                        decode_chunk_size=2), torch.float32)
    return {"geometry": geometry, "animate": animate}


def main() -> None:
    pack = load_pack(os.environ["DREAMDANCE_PACK_DIR"])
    # the node classes (ComfyUI's V3 nodes, when the pack exports those, run these V1 classes' functions: nodes/_v3.py)
    nodes = importlib.import_module(f"{pack.__name__}.nodes").NODE_CLASS_MAPPINGS
    facts: dict = {"device": str(mm.get_torch_device())}

    # every load_models_gpu call, recorded and handed on to ComfyUI's own
    calls, real_load = [], mm.load_models_gpu

    def load_models_gpu(models, *args, **kwargs):
        calls.append({"models": [type(m.model).__name__ for m in models],
                      "force_full_load": kwargs.get("force_full_load", False),
                      "memory_required": kwargs.get("memory_required", args[0] if args else 0)})
        return real_load(models, *args, **kwargs)

    mm.load_models_gpu = load_models_gpu

    # what ComfyUI has loaded while our samplers run, one record per run
    during = []

    def spy(module_name: str, function: str, key: str):
        module = importlib.import_module(f"{pack.__name__}.dreamdance_core.sampling.{module_name}")
        real = getattr(module, function)

        def wrapper(pipeline, *args, **kwargs):
            patcher = pipeline.comfy_patcher
            during.append({
                "sampler": key, "loaded": loaded_names(), "entries": len(entries(patcher)),
                "loaded_bytes": patcher.loaded_size(), "size": patcher.model_size(),
                "weights_on": sorted({str(p.device) for m in pipeline.modules() for p in m.parameters()}),
                "load_device": str(patcher.load_device),
            })
            return real(pipeline, *args, **kwargs)

        setattr(module, function, wrapper)

    spy("stage1", "sample_geometry", "geometry")
    spy("stage2", "sample_stage2", "animate")

    # another model, loaded the ComfyUI way before ours
    other = comfy.model_patcher.ModelPatcher(torch.nn.Linear(64, 64), load_device=mm.get_torch_device(),
                                             offload_device=mm.unet_offload_device())
    mm.load_models_gpu([other])
    facts["before"] = loaded_names()

    # Stage 1, kept loaded
    (geometry,) = nodes["DreamDanceGeometryModelLoader"]().load(
        stage1_weights="(tiny random demo)", base_checkpoint="(none)", clip_vision="(none)", precision="fp32",
        keep_loaded=True)
    reference, poses = torch.rand(1, H, W, 3), torch.rand(FRAMES, H, W, 3)
    generate = nodes["DreamDancePoseToGeometry"]().generate
    sample = dict(reference=reference, width=W, height=H, steps=1, seed=0, cfg_rgb=2.0, cfg_normal=2.0, cfg_depth=2.0,
                  pose_images=poses)
    depth, normal, _, _ = generate(geometry_model=geometry, **sample)
    patcher = geometry.comfy_patcher
    facts["geometry_state_bytes"] = state_bytes(geometry.modules())
    facts["after_geometry"] = loaded_names()
    generate(geometry_model=geometry, **sample)  # a second run: the same patcher, still one entry
    facts["geometry_entries_after_rerun"] = len(entries(patcher))
    facts["same_patcher_after_rerun"] = geometry.comfy_patcher is patcher

    # room needed: ComfyUI's free_memory evicts the other model (ours kept), then ours
    unloaded = mm.free_memory(1e30, mm.get_torch_device(), keep_loaded=entries(patcher))
    facts["free_memory_keeping_ours"] = [type(entry.model.model).__name__ for entry in unloaded]
    facts["after_free_keeping_ours"] = loaded_names()
    unloaded = mm.free_memory(1e30, mm.get_torch_device())
    facts["free_memory_all"] = [type(entry.model.model).__name__ for entry in unloaded]
    facts["after_free_all"] = loaded_names()
    facts["geometry_loaded_bytes_after_eviction"] = patcher.loaded_size()
    generate(geometry_model=geometry, **sample)  # evicted, then needed again: loaded again
    facts["after_geometry_reloaded"] = loaded_names()

    # Stage 2, keep_loaded off: unloaded right after its run, Stage 1 left alone
    (video,) = nodes["DreamDanceVideoModelLoader"]().load(
        stage2_weights="(tiny random demo)", svd_checkpoint="(none)", precision="fp32", keep_loaded=False)
    (frames,) = nodes["DreamDanceAnimate"]().animate(
        video_model=video, reference=reference, width=W, height=H, steps=1, seed=0, min_cfg=1.0, max_cfg=2.0, fps=7,
        motion_bucket_id=127, noise_aug_strength=0.02, strength=1.0, pose_strength=1.0, depth_strength=1.0,
        normal_strength=1.0, decode_chunk_size=2, pose_images=poses, depth=depth, normal=normal)
    facts["frames"] = list(frames.shape)
    facts["video_state_bytes"] = state_bytes(video.modules())
    facts["after_animate"] = loaded_names()
    facts["video_loaded_bytes_after"] = video.comfy_patcher.loaded_size()

    # Stage 1 with keep_loaded off, from a loader run anew (what changing the input in the UI does)
    (geometry_off,) = nodes["DreamDanceGeometryModelLoader"]().load(
        stage1_weights="(tiny random demo)", base_checkpoint="(none)", clip_vision="(none)", precision="fp32",
        keep_loaded=False)
    generate(geometry_model=geometry_off, **sample)
    facts["after_geometry_keep_loaded_off"] = loaded_names()

    # the kept pipeline dropped (ComfyUI's cache lets go of a loader's old output): its entry goes with it
    del geometry, patcher, sample
    gc.collect()
    facts["after_dropping_the_kept_pipeline"] = loaded_names()
    facts["dead_entries"] = sum(entry.model is None for entry in mm.current_loaded_models)

    facts["during"] = during
    facts["load_calls"] = calls
    facts["memory_estimates"] = memory_estimates(pack)
    facts["compile"] = compile_across_reloads(pack)
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
