"""The one place where ComfyUI types meet core types: tensor layouts, progress/interrupt, model folders, models
under ComfyUI's memory manager.

ComfyUI ``IMAGE``: float ``[frames, H, W, 3]`` in 0..1.  Core images: float ``[frames, 3, H, W]`` in -1..1.
ComfyUI modules are imported inside the functions, so importing a node module stays cheap and works in tests
that stub ComfyUI.
"""

from __future__ import annotations


def comfy_to_core(image):
    """ComfyUI IMAGE ``[f, H, W, C]`` 0..1 -> core ``[f, 3, H, W]`` -1..1 (alpha dropped, grey expanded)."""
    if image.ndim == 3:  # a single frame without batch axis
        image = image.unsqueeze(0)
    if image.ndim != 4:
        raise ValueError(f"expected an IMAGE batch [frames, H, W, C], got a tensor of shape {tuple(image.shape)}")
    channels = image.shape[-1]
    if channels == 1:
        image = image.expand(-1, -1, -1, 3)
    elif channels == 4:
        image = image[..., :3]
    elif channels != 3:
        raise ValueError(f"expected an IMAGE with 1, 3 or 4 channels, got {channels}")
    return image.permute(0, 3, 1, 2).float() * 2.0 - 1.0


def core_to_comfy(image):
    """Core ``[f, 3, H, W]`` -1..1 -> ComfyUI IMAGE ``[f, H, W, 3]`` 0..1 on the CPU."""
    return ((image.float().clamp(-1.0, 1.0) + 1.0) / 2.0).permute(0, 2, 3, 1).contiguous().cpu()


def uint8_to_comfy(images, cancel_check=None):
    """``uint8 [f, H, W, 3]`` numpy frames -> ComfyUI IMAGE, converted frame by frame with a cancel check before each
    (the same values as ``torch.from_numpy(images).float() / 255``)."""
    import torch

    out = torch.empty(images.shape, dtype=torch.float32)
    for index, frame in enumerate(images):
        if cancel_check is not None:
            cancel_check()
        out[index].copy_(torch.from_numpy(frame)).div_(255.0)
    return out


def fit_input(*extra: str) -> tuple:
    """The ``fit`` combo input, with one default everywhere (:mod:`dreamdance_core.fit`); ``extra``: more modes."""
    from ..dreamdance_core.fit import DEFAULT_FIT, FIT_HELP, FIT_MODES

    tooltip = FIT_HELP + (" stretch = scale each axis on its own (older workflows)." if "stretch" in extra else "")
    tooltip += " contain = pad (its name in older workflows)." if "contain" in extra else ""
    return ((*FIT_MODES, *extra), {"default": DEFAULT_FIT, "tooltip": tooltip})


def interrupt_check():
    """The core's cancel check (:mod:`dreamdance_core.cancel`): ComfyUI's own interrupt test, which raises its
    ``InterruptProcessingException`` once the user pressed Cancel. The core calls it between model blocks, VAE chunks
    and rendered frames, so a cancel lands within about a second at every size the nodes allow."""
    import comfy.model_management

    return comfy.model_management.throw_exception_if_processing_interrupted


def progress_callback(total: int):
    """A core callback ``(step, total, preview_or_None)`` that drives ComfyUI's progress bar and lets a cancel land.

    ``preview`` is a core image ``[3, H, W]`` in -1..1 (or None); it is shown on the node when given.
    """
    import comfy.model_management
    import comfy.utils

    bar = comfy.utils.ProgressBar(total)

    def callback(step: int, total_steps: int, preview=None):
        comfy.model_management.throw_exception_if_processing_interrupted()
        if preview is not None:
            from PIL import Image

            array = ((preview.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
            bar.update_absolute(step, total_steps, ("JPEG", Image.fromarray(array), 512))
        else:
            bar.update_absolute(step, total_steps)

    return callback


# ---------------------------------------------------------------------------------------------------------------------
# model folders

DREAMDANCE_FOLDER = "dreamdance"
NONE = "(none)"
TINY_DEMO = "(tiny random demo)"
DEMO = "(demo: synthetic mannequins)"


def register_model_folder() -> None:
    """Register ``models/dreamdance`` with ComfyUI (idempotent; extra_model_paths.yaml may add more paths)."""
    import os

    import folder_paths

    path = os.path.join(folder_paths.models_dir, DREAMDANCE_FOLDER)
    known = folder_paths.folder_names_and_paths.get(DREAMDANCE_FOLDER, ([], set()))[0]
    if path not in known:
        folder_paths.add_model_folder_path(DREAMDANCE_FOLDER, path)


def weight_folders(marker: str) -> list[str]:
    """Sub-folders of the registered ``dreamdance`` folders that contain ``marker`` (e.g. ``adapter/config.json``)."""
    from pathlib import Path

    import folder_paths

    register_model_folder()
    depth = marker.count("/")  # root/<name>/adapter/config.json -> root/<name>
    found = set()
    for root in folder_paths.get_folder_paths(DREAMDANCE_FOLDER):
        root = Path(root)
        for pattern in (f"*/{marker}", f"*/*/{marker}"):
            found.update(p.parents[depth].relative_to(root).as_posix() for p in root.glob(pattern))
    return sorted(found)


def weight_choices(marker: str, demo) -> list[str]:
    """The loader's list: weights in models/dreamdance first (the default when there are any), then the shipped demo
    checkpoint (``demo``: its :class:`DemoInfo` or None), then the tiny random model."""
    return [*weight_folders(marker), *([DEMO] if demo else []), TINY_DEMO]


def weight_source(choice: str) -> str:
    """The core's model source (:mod:`dreamdance_core.sources`) for a loader's combo value: the demo and tiny entries
    keep the names saved workflows hold; any other value is a weights folder."""
    from ..dreamdance_core import sources

    return {DEMO: sources.DEMO, TINY_DEMO: sources.TINY}.get(choice, sources.WEIGHTS)


def resolve_weight_folder(name: str, what: str, how_to_get: str):
    """Full path of ``name`` (as listed by :func:`weight_folders`) or an error naming the folders searched."""
    from pathlib import Path

    import folder_paths

    register_model_folder()
    roots = folder_paths.get_folder_paths(DREAMDANCE_FOLDER)
    for root in roots:
        candidate = Path(root) / name
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"{what} {name!r} not found in {', '.join(roots)}. {how_to_get}")


def model_file(kind: str, name: str):
    """Full path of a file chosen from a ComfyUI model folder (``checkpoints``, ``clip_vision``), or None for (none)."""
    if name == NONE:
        return None
    import folder_paths

    path = folder_paths.get_full_path(kind, name)
    if path is None:
        raise FileNotFoundError(
            f"{name!r} not found in ComfyUI's {kind} folders ({', '.join(folder_paths.get_folder_paths(kind))})"
        )
    return path


def choices(kind: str) -> list[str]:
    """``(none)`` followed by the files of a ComfyUI model folder."""
    import folder_paths

    try:
        return [NONE, *folder_paths.get_filename_list(kind)]
    except KeyError:  # folder kind unknown to this ComfyUI
        return [NONE]


# ---------------------------------------------------------------------------------------------------------------------
# models under ComfyUI's memory manager

KEEP_LOADED_HELP = (
    "On: after a run the model stays on the GPU, counted by ComfyUI's memory manager like its own models (faster "
    "re-runs; ComfyUI moves it off when another model needs the room). Off: ComfyUI unloads it to the offload device "
    "right after each run, freeing the GPU for the rest of the graph."
)


COMPILE_HELP = (
    "Run the denoiser through torch.compile. The first run compiles (minutes); later runs at the same size and "
    "window length are faster. GPU recommended."
)


def model_patcher(pipeline):
    """ComfyUI's own ``ModelPatcher`` over all modules of a core pipeline (:mod:`dreamdance_core.pipelines`), made once
    and kept on the pipeline (``pipeline.comfy_patcher``), so ComfyUI's memory manager sees one model per loaded
    pipeline: its size is counted, other models are evicted to make room for it, and it can be evicted in turn.

    The patcher wraps a plain ``nn.Module`` holding the pipeline's modules (as comfy/sd.py's VAE and
    comfy/clip_vision.py wrap theirs): ComfyUI keeps its book-keeping (``device``, loaded size) on that module, and
    moves the shared modules in place when it loads or unloads the patcher."""
    patcher = getattr(pipeline, "comfy_patcher", None)
    if patcher is None:
        import comfy.model_management as mm
        import comfy.model_patcher

        modules = _modules_class(f"DreamDance{type(pipeline).__name__}")(pipeline.modules())
        modules.device = next(modules.parameters()).device  # where the weights are now (loaders build on the CPU)
        patcher = comfy.model_patcher.ModelPatcher(
            modules, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device()
        )
        pipeline.comfy_patcher = patcher
    return patcher


_MODULE_CLASSES: dict = {}


def _modules_class(name: str):
    """An ``nn.Module`` class named ``name`` (what ComfyUI's log says it loads) holding a list of modules."""
    import torch

    cached = _MODULE_CLASSES.get(name)
    if cached is None:
        def __init__(self, modules):
            torch.nn.Module.__init__(self)
            self.parts = torch.nn.ModuleList(modules)

        cached = _MODULE_CLASSES[name] = type(name, (torch.nn.Module,), {"__init__": __init__})
    return cached


def unload_model(patcher) -> bool:
    """Unload ``patcher`` through ComfyUI's memory manager (to its offload device, out of ``current_loaded_models``),
    leaving every other loaded model alone. True when it was loaded."""
    import comfy.model_management as mm

    ours = [loaded for loaded in mm.current_loaded_models if loaded.model is patcher]
    if not ours:
        return False
    others = [loaded for loaded in mm.current_loaded_models if loaded.model is not patcher]
    # free_memory() with an impossible requirement unloads whatever it may: everything but ``keep_loaded``
    mm.free_memory(1e30, ours[0].device, keep_loaded=others)
    return True


def run_on_device(pipeline, keep_loaded: bool, memory_required: int = 0):
    """Context manager: the pipeline loaded by ComfyUI's memory manager for the work; yields the torch device its
    weights are on.

    ``comfy.model_management.load_models_gpu([patcher], memory_required=memory_required, force_full_load=True)``
    first evicts other models (fully or partly) until ours fits with room for the work, then moves ours to the GPU and
    counts it in ``current_loaded_models``. ``memory_required``: the work's activation bytes
    (:mod:`dreamdance_core.memory`, as ComfyUI's own sampling passes ``estimate_memory``); ComfyUI keeps
    ``max(memory_required + its extra reserve, its minimum inference memory)`` free, so 0 leaves only that minimum
    (about 1.2 GB). After the work it stays there (ComfyUI evicts it when another model needs the room),
    unless ``keep_loaded`` is False: then it is unloaded at once (:func:`unload_model`).

    Full load only: ComfyUI's partial ("lowvram") loading streams weights in per layer only for layers built from
    ``comfy.ops`` (``comfy_cast_weights``); our diffusers/torch layers left on the offload device would meet inputs on
    the GPU. The whole pipeline on one device is also what a ``torch.compile``-d denoiser
    (:mod:`dreamdance_core.compile`) expects: its guards check the weights' devices, and a full load puts them back on
    the same device for every run, so an eviction in between costs a copy, not a recompilation (checked in
    tests/comfyui/test_model_management.py). ``--lowvram`` therefore loads our models whole too. Under ``--novram``
    ComfyUI moves none of our layers to the GPU: the pipeline then runs where its weights are (the offload device).
    """
    import contextlib

    import comfy.model_management as mm

    @contextlib.contextmanager
    def scope():
        patcher = model_patcher(pipeline)
        mm.load_models_gpu([patcher], memory_required=memory_required, force_full_load=True)
        devices = {parameter.device for parameter in patcher.model.parameters()}
        if len(devices) != 1:  # never with a full load; say so rather than fail on mixed devices deep in a forward
            raise RuntimeError(f"ComfyUI left the DreamDance model split over {sorted(map(str, devices))}")
        try:
            yield devices.pop()
        finally:
            if not keep_loaded:
                unload_model(patcher)

    return scope()
