"""Node tests without a real ComfyUI: minimal fake ComfyUI modules, and the pack imported the way ComfyUI does.

Usage in a test module::

    from tests.node_stubs import comfy_stubs, import_pack_module  # noqa: F401  (comfy_stubs is a fixture)

    def test_something(comfy_stubs):
        pose_nodes = import_pack_module("nodes.pose")
        ...
        assert comfy_stubs.progress[-1] == (total, total)

``comfy_stubs`` (a pytest fixture, or the ``fake_comfyui(root)`` context manager) puts fake ``comfy``,
``comfy.utils``, ``comfy.model_management``, ``comfy.model_patcher`` and ``folder_paths`` modules into
``sys.modules`` and removes them afterwards. Folders (input, output, temp, models) live under a temporary
directory. What the fakes do:

- ``comfy.utils.ProgressBar``: records ``(value, total)`` of every update in ``FakeComfy.progress`` (previews in
  ``FakeComfy.previews``).
- ``comfy.model_management.throw_exception_if_processing_interrupted()`` raises ``InterruptProcessingException``
  once ``FakeComfy.interrupt()`` (or ``interrupt_current_processing()``) was called; ``get_torch_device()``,
  ``intermediate_device()`` and ``unet_offload_device()`` are the CPU, ``soft_empty_cache()`` does nothing.
- ``comfy.model_patcher.ModelPatcher`` only holds ``model``, ``load_device`` and ``offload_device``;
  ``load_models_gpu(models, ..., force_full_load=False)`` records ``(patcher, force_full_load)`` in
  ``FakeComfy.loads`` (its ``memory_required`` in ``FakeComfy.memory_required``), moves a patcher not yet loaded
  to its load device and lists it first in ``current_loaded_models`` (entries with ``model`` and ``device``);
  ``free_memory(memory, device, keep_loaded)`` unloads every model on ``device`` but those in ``keep_loaded`` to its
  offload device (tests/comfyui/test_model_management.py checks the real ones).
- ``folder_paths``: ``get_input_directory``, ``get_output_directory``, ``get_temp_directory``, ``models_dir``,
  ``folder_names_and_paths``, ``add_model_folder_path``, ``get_folder_paths``, ``get_filename_list``,
  ``get_full_path``, ``get_full_path_or_raise``, ``get_annotated_filepath``, ``exists_annotated_filepath`` and
  ``get_save_image_path``, following ComfyUI 0.3.75's behaviour for the common cases.

``import_pack()`` imports the repository root as a package under another name (what ComfyUI does with a custom
node folder, whatever it is called), so relative imports such as ``from ..dreamdance_core import ...`` resolve
inside that package. ``import_pack_module("nodes.pose")`` imports one module of it without running the package's
``__init__`` files (so one broken node module does not break the tests of the others).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACK_NAME = "dreamdance_pack_under_test"  # not the folder's name, on purpose
STUBBED = ("comfy", "comfy.utils", "comfy.model_management", "comfy.model_patcher", "folder_paths")


class InterruptProcessingException(Exception):
    """Stands for comfy.model_management.InterruptProcessingException."""


@dataclass
class FakeComfy:
    """The state behind the fake modules: folders, progress updates, the interrupt flag."""

    root: Path
    progress: list[tuple[int, int]] = field(default_factory=list)
    previews: list[object] = field(default_factory=list)
    interrupted: bool = False
    loads: list[tuple[object, bool]] = field(default_factory=list)
    memory_required: list[int] = field(default_factory=list)

    @property
    def input_dir(self) -> Path:
        return self.root / "input"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def temp_dir(self) -> Path:
        return self.root / "temp"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def interrupt(self, value: bool = True) -> None:
        self.interrupted = value


def _utils_module(state: FakeComfy) -> types.ModuleType:
    module = types.ModuleType("comfy.utils")

    class ProgressBar:
        def __init__(self, total: int, node_id=None):
            self.total, self.current = total, 0

        def update_absolute(self, value: int, total: int | None = None, preview=None) -> None:
            self.total = total if total is not None else self.total
            self.current = value
            state.progress.append((value, self.total))
            if preview is not None:
                state.previews.append(preview)

        def update(self, value: int) -> None:
            self.update_absolute(self.current + value)

    module.ProgressBar = ProgressBar
    return module


def _model_management_module(state: FakeComfy) -> types.ModuleType:
    import torch

    module = types.ModuleType("comfy.model_management")
    module.InterruptProcessingException = InterruptProcessingException

    def throw_exception_if_processing_interrupted() -> None:
        if state.interrupted:
            state.interrupted = False
            raise InterruptProcessingException()

    module.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted
    module.interrupt_current_processing = state.interrupt
    module.processing_interrupted = lambda: state.interrupted
    module.get_torch_device = module.intermediate_device = module.unet_offload_device = lambda: torch.device("cpu")
    module.soft_empty_cache = lambda *args, **kwargs: None
    module.current_loaded_models = []

    class LoadedModel:
        def __init__(self, patcher):
            self.model, self.device = patcher, patcher.load_device

    def load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None,
                        force_full_load=False) -> None:
        state.memory_required.append(memory_required)
        for patcher in models:
            state.loads.append((patcher, force_full_load))
            if not any(loaded.model is patcher for loaded in module.current_loaded_models):
                patcher.model.to(patcher.load_device)
                module.current_loaded_models.insert(0, LoadedModel(patcher))

    def free_memory(memory_required, device, keep_loaded=()) -> list:
        kept = {id(loaded.model) for loaded in keep_loaded}
        unloaded = [m for m in module.current_loaded_models if m.device == device and id(m.model) not in kept]
        for loaded in unloaded:
            loaded.model.model.to(loaded.model.offload_device)
            module.current_loaded_models.remove(loaded)
        return unloaded

    module.load_models_gpu, module.free_memory = load_models_gpu, free_memory
    return module


def _model_patcher_module() -> types.ModuleType:
    module = types.ModuleType("comfy.model_patcher")

    class ModelPatcher:
        def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
            self.model, self.load_device, self.offload_device = model, load_device, offload_device

    module.ModelPatcher = ModelPatcher
    return module


def _folder_paths_module(state: FakeComfy) -> types.ModuleType:
    module = types.ModuleType("folder_paths")
    module.models_dir = str(state.models_dir)
    module.supported_pt_extensions = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
    module.folder_names_and_paths = {
        name: ([str(state.models_dir / name)], module.supported_pt_extensions)
        for name in ("checkpoints", "vae", "clip_vision", "controlnet", "diffusers")
    }
    module.get_input_directory = lambda: str(state.input_dir)
    module.get_output_directory = lambda: str(state.output_dir)
    module.get_temp_directory = lambda: str(state.temp_dir)

    def add_model_folder_path(name: str, path: str, is_default: bool = False) -> None:
        paths, extensions = module.folder_names_and_paths.setdefault(name, ([], set(module.supported_pt_extensions)))
        if path not in paths:
            paths.insert(0, path) if is_default else paths.append(path)

    def get_folder_paths(name: str) -> list[str]:
        return list(module.folder_names_and_paths[name][0])

    def get_filename_list(name: str) -> list[str]:
        paths, extensions = module.folder_names_and_paths.get(name, ([], set()))
        found = {
            str(file.relative_to(folder))
            for folder in map(Path, paths)
            if folder.is_dir()
            for file in folder.rglob("*")
            if file.is_file() and (not extensions or file.suffix in extensions)
        }
        return sorted(found)

    def get_full_path(name: str, filename: str) -> str | None:
        for folder in module.folder_names_and_paths.get(name, ([], set()))[0]:
            path = Path(folder) / filename
            if path.is_file():
                return str(path)
        return None

    def get_full_path_or_raise(name: str, filename: str) -> str:
        path = get_full_path(name, filename)
        if path is None:
            raise FileNotFoundError(f"Model in folder '{name}' with filename '{filename}' not found.")
        return path

    def get_annotated_filepath(name: str, default_dir: str | None = None) -> str:
        annotations = ((" [output]", state.output_dir), (" [input]", state.input_dir), (" [temp]", state.temp_dir))
        for suffix, folder in annotations:
            if name.endswith(suffix):
                return str(folder / name[: -len(suffix)])
        return str(Path(default_dir or state.input_dir) / name)

    def get_save_image_path(filename_prefix: str, output_dir: str, image_width=0, image_height=0):
        subfolder, filename = str(Path(filename_prefix).parent), Path(filename_prefix).name
        full_output_folder = (Path(output_dir) / subfolder).resolve()
        if Path(output_dir).resolve() not in (full_output_folder, *full_output_folder.parents):
            raise Exception("**** ERROR: Saving image outside the output folder is not allowed.")
        existing = [p.name for p in full_output_folder.glob(f"{filename}_*")] if full_output_folder.is_dir() else []
        counters = [int(n[len(filename) + 1:].split("_")[0].split(".")[0]) for n in existing
                    if n[len(filename) + 1:].split("_")[0].split(".")[0].isdigit()]
        full_output_folder.mkdir(parents=True, exist_ok=True)
        return str(full_output_folder), filename, max(counters, default=0) + 1, subfolder, filename_prefix

    module.add_model_folder_path = add_model_folder_path
    module.get_folder_paths = get_folder_paths
    module.get_filename_list = get_filename_list
    module.get_full_path = get_full_path
    module.get_full_path_or_raise = get_full_path_or_raise
    module.get_annotated_filepath = get_annotated_filepath
    module.exists_annotated_filepath = lambda name: Path(get_annotated_filepath(name)).exists()
    module.get_save_image_path = get_save_image_path
    return module


@contextmanager
def fake_comfyui(root: Path) -> Iterator[FakeComfy]:
    """Install the fake ComfyUI modules (folders under ``root``) for the duration of the block."""
    state = FakeComfy(Path(root))
    for folder in (state.input_dir, state.output_dir, state.temp_dir, state.models_dir):
        folder.mkdir(parents=True, exist_ok=True)
    comfy = types.ModuleType("comfy")
    comfy.__path__ = []  # a package, so "import comfy.utils" works
    comfy.utils, comfy.model_management = _utils_module(state), _model_management_module(state)
    comfy.model_patcher = _model_patcher_module()
    fakes = {"comfy": comfy, "comfy.utils": comfy.utils, "comfy.model_management": comfy.model_management,
             "comfy.model_patcher": comfy.model_patcher, "folder_paths": _folder_paths_module(state)}
    saved = {name: sys.modules.get(name) for name in STUBBED}
    sys.modules.update(fakes)
    try:
        yield state
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


@pytest.fixture
def comfy_stubs(tmp_path: Path) -> Iterator[FakeComfy]:
    """Fake ComfyUI modules with throw-away folders under ``tmp_path``; see ``FakeComfy``."""
    with fake_comfyui(tmp_path / "comfyui") as state:
        yield state


def _bare_package(name: str, path: Path) -> types.ModuleType:
    """A package module for ``path`` whose ``__init__`` is not run (its submodules import normally)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [str(path)]
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    return module


def import_pack(name: str = PACK_NAME) -> types.ModuleType:
    """Import the repository root as the package ``name``, running its ``__init__`` (all node modules), as ComfyUI
    loads a custom node folder. Returns the package (``NODE_CLASS_MAPPINGS``, ``WEB_DIRECTORY``...)."""
    if name in sys.modules and getattr(sys.modules[name], "__file__", None):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def import_pack_module(relative: str, name: str = PACK_NAME + "_parts") -> types.ModuleType:
    """Import one module of the pack (``"nodes.pose"``) inside a package ``name`` standing for the pack folder,
    without running the ``__init__`` of the pack or of ``nodes`` (``dreamdance_core``'s own ``__init__`` runs)."""
    _bare_package(name, REPO_ROOT)
    parts = relative.split(".")
    if parts[0] != "dreamdance_core":  # the library's packages import normally
        for depth in range(1, len(parts)):
            _bare_package(".".join([name, *parts[:depth]]), REPO_ROOT.joinpath(*parts[:depth]))
    return importlib.import_module(f"{name}.{relative}")
