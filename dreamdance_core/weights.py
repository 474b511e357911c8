"""Strict, safetensors-only weight reading shared by every loader and by the models' own ``from_pretrained``.

It sits below ``models/`` and ``loading/`` (it imports neither), so a model class may read its weights strictly and a
loader may build it, with one :class:`WeightFileError` for every wrong file.

Two ways to read a file: :func:`read_safetensors` (every tensor at once) and :class:`SafetensorsFile` (the header
first - names, shapes, dtypes - and then one tensor at a time), so a loader can refuse a wrong file from its key names
before it reads any weight. Models are built without weights (parameters on the meta device, accelerate's
``init_empty_weights``) and filled by assignment (:func:`build_strict`), so loading needs about one copy of the
weights in memory, not two.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Mapping, TypeVar

import torch

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
DIFFUSERS_WEIGHT_NAMES = (WEIGHTS_NAME, "diffusion_pytorch_model.fp16.safetensors")
"""What ``save_pretrained`` writes, and its ``variant="fp16"`` form (the only form some hub folders hold)."""
CONFIG_NAME = "config.json"
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")

M = TypeVar("M", bound=torch.nn.Module)
StateDict = dict[str, torch.Tensor]


class WeightFileError(ValueError):
    """A weight file or folder is missing, unreadable, unsafe or does not match the model."""


def _check_safetensors_path(path: Path) -> None:
    """Refuse pickles (they can run code when opened) and name a missing file with its folder."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise WeightFileError(
            f"{path} is a pickle checkpoint ({path.suffix}); DreamDance only loads .safetensors files, because pickles "
            f"can run code when opened. Convert it to safetensors (e.g. with the safetensors library) or download the "
            f".safetensors release of the same model."
        )
    if not path.is_file():
        raise WeightFileError(
            f"weight file {path.name!r} not found in {path.parent} (looked for {path}). Check the path, or place the "
            f"file there."
        )


def _corrupt(path: Path, error: Exception) -> WeightFileError:
    return WeightFileError(
        f"{path} could not be read as safetensors ({error}). The file is truncated or corrupt: download or "
        f"export it again."
    )


def _read_errors() -> tuple[type[Exception], ...]:
    from safetensors import SafetensorError

    return SafetensorError, OSError, RuntimeError, ValueError


def read_safetensors(path: str | os.PathLike, device: str = "cpu") -> StateDict:
    """Read a safetensors file, turning every failure into an error that says which file and what to do."""
    path = Path(path)
    _check_safetensors_path(path)
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=device)
    except _read_errors() as error:
        raise _corrupt(path, error) from error


class SafetensorsFile(Mapping[str, torch.Tensor]):
    """A safetensors file read lazily: names and shapes come from its header; ``file[name]`` reads one tensor.

    Use as a context manager. :meth:`meta` gives the whole file as weightless meta tensors of the right shapes and
    dtypes, for checks that look only at names and shapes (e.g. diffusers' ``infer_diffusers_model_type``).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        _check_safetensors_path(self.path)
        from safetensors import safe_open

        try:
            self._file = safe_open(str(self.path), framework="pt", device="cpu")
            self._names = list(self._file.keys())
            self._slices = {name: self._file.get_slice(name) for name in self._names}
        except _read_errors() as error:
            raise _corrupt(self.path, error) from error

    def __enter__(self) -> "SafetensorsFile":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._file = self._slices = None

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._slices

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._slices[name].get_shape())

    def __getitem__(self, name: str) -> torch.Tensor:
        """Read one tensor from disk (the only method that reads weights)."""
        if name not in self._slices:
            raise KeyError(name)
        try:
            return self._file.get_tensor(name)
        except _read_errors() as error:
            raise _corrupt(self.path, error) from error

    def meta(self) -> StateDict:
        from safetensors.torch import _getdtype

        return {
            name: torch.empty(self.shape(name), dtype=_getdtype(self._slices[name].get_dtype()), device="meta")
            for name in self._names
        }


def check_state_dict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise if ``state_dict`` has missing, unexpected or wrongly shaped keys for ``model`` (lists them)."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state_dict)
        if tuple(expected[k].shape) != tuple(state_dict[k].shape)
    )
    titled = (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched))
    problems = [f"{len(keys)} {title}: {shorten(keys)}" for title, keys in titled if keys]
    if problems:
        raise WeightFileError(
            f"{source} does not match {type(model).__name__}: " + "; ".join(problems)
            + ". The file was made for a different model or configuration; use the weights that belong with this "
            "config.json."
        )


def shorten(keys: list[str], limit: int = 12) -> str:
    """The first ``limit`` keys, comma-separated, and how many more there are."""
    return ", ".join(keys[:limit]) + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def build_empty(factory: Callable[[], M]) -> M:
    """``factory()`` with its parameters on the meta device (no memory, no random initialisation); buffers stay real.

    accelerate's ``init_empty_weights(include_buffers=False)``, what diffusers' and transformers' own low-memory
    loading uses: non-persistent buffers (e.g. CLIP's ``position_ids``), which no file holds, keep their values.
    """
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        return factory()


def fill_strict(model: M, state: StateDict, source: str, dtype: torch.dtype | None = None) -> M:
    """Give ``model`` (e.g. from :func:`build_empty`) exactly the tensors of ``state``, in eval mode.

    Strict: every key present, none extra, same shapes (:func:`check_state_dict`). Floating tensors become ``dtype``
    (default float32) one at a time and are assigned, not copied (``load_state_dict(assign=True)``), so the weights
    exist once in memory. ``state`` is emptied as it is consumed.
    """
    check_state_dict(model, state, source)
    target = dtype or torch.float32
    for key in list(state):
        tensor = state[key]
        state[key] = tensor.to(target) if tensor.is_floating_point() else tensor
    model.load_state_dict(state, strict=True, assign=True)
    state.clear()
    return model.eval()


def build_strict(cls: type[M], config: dict[str, Any], state: StateDict, source: str, dtype: torch.dtype | None) -> M:
    """A diffusers ``cls`` from ``config`` holding exactly ``state`` (see :func:`fill_strict`), in eval mode.

    Older diffusers folders (e.g. the VAE of stock SD1.5 folders and ``stabilityai/sd-vae-ft-mse``) name the VAE
    mid-block attention ``query/key/value/proj_attn``; they are renamed to ``to_q/to_k/to_v/to_out.0`` by diffusers'
    own ``ModelMixin._fix_state_dict_keys_on_load``, exactly as ``from_pretrained`` does.
    """
    try:
        model = build_empty(lambda: cls.from_config(config))
    except (TypeError, ValueError) as error:
        raise WeightFileError(f"the config for {source} does not describe a valid {cls.__name__}: {error}") from error
    fix_keys = getattr(model, "_fix_state_dict_keys_on_load", None)
    if fix_keys is not None:
        fix_keys(state)  # renames in place
    return fill_strict(model, state, source, dtype)


def component_folder(folder: Path, subfolder: str, how_to_get: str) -> Path:
    """``folder/subfolder`` of a pipeline folder, or ``folder`` itself when it is that component's own folder."""
    for candidate in (folder / subfolder, folder):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    raise WeightFileError(
        f"{folder} is not a model folder: neither {subfolder}/{CONFIG_NAME} nor {CONFIG_NAME} is in it. {how_to_get}"
    )


def find_weights_file(folder: Path, names: tuple[str, ...], how_to_get: str) -> Path:
    """The first of ``names`` present in ``folder``; a clear error if only pickles or nothing are there."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    if not folder.is_dir():
        raise WeightFileError(f"folder {folder} not found (looked for {' or '.join(names)}). {how_to_get}")
    pickles = sorted(p for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        read_safetensors(pickles[0])  # raises the pickle-refusal error that names the file
    present = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
    raise WeightFileError(
        f"no weights in {folder}: looked for {' or '.join(names)}, found {present}. {how_to_get}"
    )


def load_model_strict(
    cls: type[M], folder: str | os.PathLike, *, dtype: torch.dtype | None = None, how_to_get: str = ""
) -> M:
    """Load a diffusers ``ModelMixin`` saved with ``save_pretrained`` - strictly: every key must match.

    Reads ``diffusion_pytorch_model.safetensors`` or, if only that is there, its ``fp16`` variant. (diffusers' own
    ``from_pretrained`` initialises missing weights randomly with only a warning.)
    """
    folder = Path(folder)
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise WeightFileError(
            f"{cls.__name__}: no {CONFIG_NAME} in {folder}. Point at the folder written by save_pretrained "
            f"(it holds {CONFIG_NAME} and {WEIGHTS_NAME}). {how_to_get}".rstrip()
        )
    try:
        config = dict(cls.load_config(folder))
    except (OSError, ValueError) as error:
        raise WeightFileError(f"{config_path} is not a valid model config ({error}).") from error
    weights = find_weights_file(folder, DIFFUSERS_WEIGHT_NAMES, how_to_get)
    return build_strict(cls, config, read_safetensors(weights), str(weights), dtype)
