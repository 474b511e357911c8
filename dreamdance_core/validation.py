"""One validation layer for every door (library, command line, train/ scripts, ComfyUI nodes), run before model work.

Every refusal is an :class:`InputError` (a ``ValueError``) whose message names the input, the problem and the fix.
The checks are small functions a door calls with the user's names for its inputs:

- :func:`check_number` / :func:`check_int`: finite and inside a range (NaN, inf, booleans and strings refused);
- :func:`check_size`: a width x height, both positive multiples of 8 up to :data:`MAX_SIDE`;
- :func:`check_images`: a float image batch, finite, in the documented range (core ``-1..1`` or ComfyUI ``0..1``);
  uint8 or 0..255 data is refused with the conversion to use, never silently read as -1..1;
- :func:`estimate_bytes` / :func:`check_budget`: an up-front estimate of the memory a request needs, refused with the
  number, the limit and what to lower instead of failing in an allocation (:func:`memory_limit`: the environment
  variable ``DREAMDANCE_MEMORY_LIMIT_GB``, else half of this machine's memory).

Ranges follow what ComfyUI users know: ``cfg`` 0..100 (ComfyUI's KSampler maximum), SVD's ``fps`` 1..1024, motion
bucket 0..1023, noise augmentation 0..10 (ComfyUI's ``SVD_img2vid_Conditioning``).
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np

MAX_SIDE = 16384  # pixels (ComfyUI's MAX_RESOLUTION; the pose canvas limit)
MAX_FRAMES = 100_000  # frames of one request (the pose tools' limit; memory decides before that)
MAX_STEPS = 10_000
MAX_CFG = 100.0  # ComfyUI's KSampler cfg maximum
MAX_FPS = 1024
MAX_MOTION_BUCKET = 1023
MAX_NOISE_AUG = 10.0
RANGE_TOLERANCE = 1e-2  # how far outside the documented range a value may lie (rounding of converters)


class InputError(ValueError):
    """An input a user gave cannot work; the message names the input, the problem and the fix."""


# --- numbers --------------------------------------------------------------------------------------------------------


def _is_number(value) -> bool:
    return isinstance(value, (numbers.Real, np.number)) and not isinstance(value, (bool, np.bool_))


def check_number(
    name: str, value, low: float | None = None, high: float | None = None, fix: str | None = None
) -> float:
    """``value`` as a finite float in ``low..high`` (either bound may be None); else an :class:`InputError`."""
    if not _is_number(value):
        raise InputError(f"{name} must be a number, got {value!r:.60}; {fix or 'give a number'}")
    number = float(value)
    if math.isnan(number):
        raise InputError(f"{name} is NaN (not a number); {fix or _range_fix(low, high)}")
    if math.isinf(number):
        raise InputError(f"{name} is infinite ({number}); {fix or _range_fix(low, high)}")
    _check_bounds(name, number, low, high, fix)
    return number


def _check_bounds(name: str, value, low, high, fix: str | None) -> None:
    if low is not None and value < low:
        raise InputError(f"{name} must be at least {_fmt(low)}, got {_fmt(value)}; {fix or _range_fix(low, high)}")
    if high is not None and value > high:
        raise InputError(f"{name} must be at most {_fmt(high)}, got {_fmt(value)}; {fix or _range_fix(low, high)}")


def _fmt(value) -> str:
    return str(int(value)) if isinstance(value, (numbers.Integral, np.integer)) else f"{float(value):.6g}"


def check_int(name: str, value, low: int | None = None, high: int | None = None, fix: str | None = None) -> int:
    """``value`` as an int in ``low..high`` (a float must be whole: 8.0 is 8, 8.5 is refused)."""
    if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_)):
        _check_bounds(name, value, low, high, fix)
        return int(value)
    number = check_number(name, value, low, high, fix)
    if number != int(number):
        raise InputError(f"{name} must be a whole number, got {value!r}; {fix or 'give a whole number'}")
    return int(number)


def _range(low, high) -> str:
    if low is not None and high is not None:
        return f"{_fmt(low)}..{_fmt(high)}"
    return f">= {_fmt(low)}" if low is not None else f"<= {_fmt(high)}"


def _range_fix(low, high) -> str:
    return "give a finite number" if low is None and high is None else f"give a value in {_range(low, high)}"


def check_numbers(name: str, values, count: int, low: float | None = None, high: float | None = None) -> tuple:
    """A sequence of exactly ``count`` numbers, each checked by :func:`check_number` (named ``name[i]``)."""
    try:
        items = list(values)
    except TypeError:
        raise InputError(f"{name} must be a list of {count} numbers, got {values!r:.60}") from None
    if len(items) != count:
        raise InputError(f"{name} needs {count} values, got {len(items)}; give exactly {count}")
    return tuple(check_number(f"{name}[{i}]", v, low, high) for i, v in enumerate(items))


def check_size(width, height, name: str = "size", multiple: int = 8, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """``(width, height)`` as ints, both positive multiples of ``multiple`` up to ``max_side``."""
    width = check_int(f"{name} width", width, multiple, max_side, f"give a multiple of {multiple} in "
                      f"{multiple}..{max_side}")
    height = check_int(f"{name} height", height, multiple, max_side, f"give a multiple of {multiple} in "
                       f"{multiple}..{max_side}")
    if width % multiple or height % multiple:
        raise InputError(
            f"{name} {width}x{height} (width x height): both sides must be multiples of {multiple}; use e.g. "
            f"{max(multiple, width // multiple * multiple)}x{max(multiple, height // multiple * multiple)}"
        )
    return width, height


def check_frames(name: str, value, high: int = MAX_FRAMES) -> int:
    """A frame count 1..``high``."""
    return check_int(name, value, 1, high, f"give 1..{high} frames")


def check_choice(name: str, value, choices) -> str:
    """``value`` one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        raise InputError(f"{name} {value!r:.60} is not one of {choices}; pick one of them")
    return value


# --- paths ----------------------------------------------------------------------------------------------------------

MAX_NAME_BYTES = 200  # per folder or file name of a prefix; a counter and a suffix still fit in 255


def check_filename_prefix(prefix, name: str = "filename_prefix") -> str:
    """A relative path prefix under an output folder that the file system takes: no control characters (NUL), not
    absolute, no ``..``, each name under :data:`MAX_NAME_BYTES` bytes. Returns ``prefix``."""
    from pathlib import PurePosixPath, PureWindowsPath

    if not isinstance(prefix, str) or not prefix.strip():
        raise InputError(f"{name} must be a non-empty text like 'dreamdance/pose', got {prefix!r:.60}")
    bad = sorted({repr(c) for c in prefix if ord(c) < 32 or c == "\x7f"})
    if bad:
        raise InputError(f"{name} contains control characters ({', '.join(bad)}); use letters, digits, '-', '_', '/'")
    parts = prefix.replace("\\", "/").split("/")
    if PurePosixPath(prefix).is_absolute() or PureWindowsPath(prefix).is_absolute() or ".." in parts:
        raise InputError(
            f"{name} {prefix[:80]!r} leaves the output folder; give a path under it, like 'dreamdance/pose'"
        )
    for part in parts:
        if len(part.encode()) > MAX_NAME_BYTES:
            raise InputError(
                f"{name} has a name of {len(part.encode())} bytes ({part[:24]!r}...); file systems allow 255 and the "
                f"counter needs room: keep each folder or file name under {MAX_NAME_BYTES} bytes"
            )
    return prefix


# --- images ---------------------------------------------------------------------------------------------------------

CORE = "core"  # float [frames, 3, H, W] in -1..1
COMFY = "comfy"  # float [frames, H, W, 3] in 0..1
_RANGES = {CORE: (-1.0, 1.0), COMFY: (0.0, 1.0)}
_CONVERT = {
    CORE: "convert 0..255 or uint8 pixels with x / 127.5 - 1 (dreamdance_core.media.from_uint8), 0..1 with x * 2 - 1",
    COMFY: "convert 0..255 or uint8 pixels with x / 255",
}


def check_images(name: str, images, layout: str = CORE, frames: int | None = None, size: tuple[int, int] | None = None,
                 multiple: int | None = None, channels: int = 3):
    """A batch of images as the core (``layout="core"``: ``[F, 3, H, W]`` in -1..1) or ComfyUI (``"comfy"``:
    ``[F, H, W, 3]`` in 0..1) documents it: a float tensor (or array), finite, in range, with ``frames`` frames and
    ``size`` (width, height) when given, sides multiples of ``multiple`` when given. Returns ``images`` unchanged.

    Integer data (uint8 pixels) and values far outside the range (0..255 read as -1..1) are refused with the
    conversion to apply - never silently rescaled."""
    import torch

    if layout not in _RANGES:
        raise ValueError(f"layout must be {CORE!r} or {COMFY!r}, got {layout!r}")
    if isinstance(images, np.ndarray):
        tensor = torch.from_numpy(images) if images.dtype != np.object_ else None
    else:
        tensor = images if isinstance(images, torch.Tensor) else None
    shape_text = "[frames, 3, height, width]" if layout == CORE else "[frames, height, width, 3]"
    if tensor is None:
        raise InputError(f"{name} must be an image tensor {shape_text}, got {type(images).__name__}")
    if tensor.ndim != 4 or tensor.shape[1 if layout == CORE else 3] != channels:
        raise InputError(f"{name} must be images {shape_text}, got shape {tuple(tensor.shape)}; give a batch of "
                         f"{channels}-channel images")
    low, high = _RANGES[layout]
    if not tensor.is_floating_point():
        raise InputError(
            f"{name} holds {str(tensor.dtype).replace('torch.', '')} values; images must be floats in "
            f"{low:g}..{high:g}: {_CONVERT[layout]}"
        )
    count = tensor.shape[0]
    height, width = tensor.shape[-2:] if layout == CORE else tensor.shape[1:3]
    if count < 1:
        raise InputError(f"{name} holds no frames; give at least one image")
    if frames is not None and count != frames:
        raise InputError(f"{name} holds {count} frames but {frames} are needed; give one image per frame")
    if size is not None and (width, height) != tuple(size):
        raise InputError(f"{name} is {width}x{height} (width x height) but {size[0]}x{size[1]} is needed; resize it")
    if multiple and (width % multiple or height % multiple):
        raise InputError(f"{name} is {width}x{height} (width x height); both sides must be multiples of {multiple}: "
                         f"resize to e.g. {max(multiple, width // multiple * multiple)}x"
                         f"{max(multiple, height // multiple * multiple)}")
    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise InputError(f"{name} contains {bad} NaN or infinite value(s); give finite pixel values in "
                         f"{low:g}..{high:g}")
    smallest, largest = float(tensor.min()), float(tensor.max())
    if smallest < low - RANGE_TOLERANCE or largest > high + RANGE_TOLERANCE:
        hint = f": it looks like 0..255 pixels, {_CONVERT[layout]}" if largest > 2.0 else (
            "; it looks like 0..1 (ComfyUI) images: convert with x * 2 - 1" if layout == CORE and smallest >= 0
            and largest <= 1.0 else f"; clamp or rescale it to {low:g}..{high:g}"
        )
        raise InputError(f"{name} has values {smallest:.4g}..{largest:.4g}, outside the documented {low:g}..{high:g}"
                         f"{hint}")
    return images


# --- memory and work ------------------------------------------------------------------------------------------------

GIB = 2**30


def estimate_bytes(shape, dtype="float32") -> int:
    """Bytes of an array of ``shape`` and ``dtype`` (numpy or torch dtype, or its name); exact integer arithmetic."""
    itemsize = _itemsize(dtype)
    total = itemsize
    for side in shape:
        total *= int(side)
    return total


def _itemsize(dtype) -> int:
    import torch

    if isinstance(dtype, torch.dtype):
        return torch.empty((), dtype=dtype).element_size()
    return np.dtype(dtype).itemsize


def memory_limit() -> int:
    """Bytes one request may plan to hold: ``DREAMDANCE_MEMORY_LIMIT_GB`` (GiB), else half of the machine's memory."""
    configured = os.environ.get("DREAMDANCE_MEMORY_LIMIT_GB")
    if configured:
        try:
            value = float(configured)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value <= 0:
            raise InputError(f"DREAMDANCE_MEMORY_LIMIT_GB is {configured!r}; set it to a positive number of GiB")
        return int(value * GIB)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (AttributeError, ValueError, OSError):  # not POSIX: a conservative 8 GiB
        return 8 * GIB


def format_bytes(count: int) -> str:
    return f"{count / GIB:.1f} GiB" if count >= GIB / 10 else f"{count / 2**20:.1f} MiB"


def check_budget(what: str, needed: int, fix: str, limit: int | None = None) -> int:
    """Refuse a request whose estimated memory ``needed`` (bytes) exceeds ``limit`` (default :func:`memory_limit`):
    the message gives the estimate, the limit and ``fix`` (what to lower). Returns ``needed``."""
    limit = memory_limit() if limit is None else int(limit)
    if needed > limit:
        raise InputError(
            f"{what} would need about {format_bytes(needed)}, more than the limit of {format_bytes(limit)} "
            f"(half this machine's memory, or DREAMDANCE_MEMORY_LIMIT_GB); {fix}"
        )
    return needed


def check_frames_budget(what: str, frames: int, width: int, height: int, copies: float = 1.0, dtype="float32",
                        channels: int = 3, limit: int | None = None) -> int:
    """:func:`check_budget` for ``copies`` image batches ``[frames, channels, height, width]`` of ``dtype``."""
    needed = int(estimate_bytes((frames, channels, height, width), dtype) * copies)
    fix = f"lower the frame count ({frames}) or the size ({width}x{height})"
    return check_budget(what, needed, fix, limit)


# --- sampler options (the dataclasses of dreamdance_core.sampling call these) ----------------------------------------


def check_steps(name: str, value) -> int:
    return check_int(name, value, 1, MAX_STEPS, f"give 1..{MAX_STEPS} steps (0 steps would do nothing)")


def check_cfg(name: str, value) -> float:
    return check_number(name, value, 0.0, MAX_CFG, f"give a guidance scale in 0..{MAX_CFG:g} (1 = no guidance)")


def check_strength(name: str, value, high: float = 10.0) -> float:
    return check_number(name, value, 0.0, high, f"give a strength in 0..{high:g} (1 = as trained, 0 = off)")
