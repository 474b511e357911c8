"""Cancellation: one mechanism for every long-running core function (sampling, VAE coding, rendering, decoding).

A **cancel check** is a function of no arguments that returns to let the work go on and raises to cancel it (ComfyUI's
``comfy.model_management.throw_exception_if_processing_interrupted`` is one; the nodes pass it). Functions that can
run long take it as the keyword ``cancel_check`` (None: never cancelled) and call it:

* inside every model forward, between blocks: :func:`cancel_hooks` installs a forward pre-hook that calls it on every
  submodule (a UNet's down/mid/up blocks, their resnets, attentions, transformer blocks and the layers in them; a
  VAE's encoder/decoder blocks and convolutions; CLIP's layers; the controller's encoders; the ControlNet's blocks),
  for the duration of one call only;
* inside a long attention, between chunks of queries: for that call, every diffusers ``AttnProcessor2_0`` is replaced
  by :class:`CancellableAttnProcessor` (the same steps) and our Stage-1 processors by their ``with_cancel_check``
  copies, so even one attention over all tokens of a 2048x2048 image does not hold a cancel for minutes;
* between VAE chunks when encoding and decoding, and between frames when rendering or decoding pose images.

The exception the check raises propagates unchanged. :func:`release_on_error` (on the samplers) drops the locals of
the frames the exception left, so the traceback held by the caller keeps no latents or features alive, and empties
the CUDA cache. A hook is a plain Python call of the check: with no hooks installed (outside a call) the models are
the unmodified modules, so ``torch.compile`` and training see nothing of this.
"""

from __future__ import annotations

import contextlib
import functools
import traceback
import types
from typing import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

CancelCheck = Callable[[], None]
"""Returns to go on, raises to cancel (the exception propagates to the caller unchanged)."""

_CONTAINERS = (nn.ModuleList, nn.ModuleDict, nn.Sequential)


def check(cancel_check: CancelCheck | None) -> None:
    """Call the cancel check if there is one."""
    if cancel_check is not None:
        cancel_check()


def cancel_points(module: nn.Module) -> list[nn.Module]:
    """The submodules of ``module`` a cancel check runs before: all of them but containers (``ModuleList``,
    ``ModuleDict``, ``Sequential``: their elements are points), each once. At full resolution a single resnet or the
    VAE's last convolutions take seconds on a CPU, so blocks alone would be too coarse; a check costs about a
    microsecond, against milliseconds for a forward."""
    return [sub for sub in module.modules() if sub is not module and not isinstance(sub, _CONTAINERS)]


ATTENTION_CHUNK_FLOPS = 2**30
"""Largest attention computed without a cancel check in it, in multiply-adds (``rows x keys x head_dim``) plus
:data:`ATTENTION_ROW_COST` per query row (many tiny attentions, e.g. one per pixel over 3 modalities, cost more than
their multiply-adds); a larger one is split along the batch, then along the queries, with a check before each chunk
(~0.1-1 s of CPU each)."""
ATTENTION_ROW_COST = 1024


def _attention_cost(query: torch.Tensor, key: torch.Tensor) -> int:
    return query.shape[:-1].numel() * (key.shape[-2] * query.shape[-1] + ATTENTION_ROW_COST)


def _rows(mask: torch.Tensor | None, start: int, stop: int, dim: int) -> torch.Tensor | None:
    """The part of a broadcastable mask for positions ``start:stop`` of ``dim`` (counted from the end)."""
    if mask is None or mask.ndim < -dim or mask.shape[dim] == 1:
        return mask
    return mask.narrow(dim, start, stop - start)


def scaled_dot_product_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask: torch.Tensor | None = None,
    cancel_check: CancelCheck | None = None,
) -> torch.Tensor:
    """``F.scaled_dot_product_attention(query, key, value, attn_mask)`` (``[b, ..., n, d]``; no dropout, not
    causal), split with ``cancel_check`` before each chunk when it is large (:data:`ATTENTION_CHUNK_FLOPS`): along the
    batch, then along the queries. Every query row sees all its keys either way; unsplit (small, or no check) it is the
    very same call."""
    cost = _attention_cost(query, key)
    if cancel_check is None or cost <= ATTENTION_CHUNK_FLOPS:
        return F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask)
    batch, queries = (query.shape[0] if query.ndim > 2 else 1), query.shape[-2]
    if batch > 1:
        chunk, out = max(1, batch * ATTENTION_CHUNK_FLOPS // cost), []
        for start in range(0, batch, chunk):
            stop = min(batch, start + chunk)
            cancel_check()
            mask = _rows(attn_mask, start, stop, -query.ndim)
            out.append(scaled_dot_product_attention(query[start:stop], key[start:stop], value[start:stop], mask,
                                                    cancel_check))
        return torch.cat(out, dim=0)
    chunk, out = max(1, queries * ATTENTION_CHUNK_FLOPS // cost), []
    for start in range(0, queries, chunk):
        stop = min(queries, start + chunk)
        cancel_check()
        mask = _rows(attn_mask, start, stop, -2)
        out.append(F.scaled_dot_product_attention(query[..., start:stop, :], key, value, attn_mask=mask))
    return torch.cat(out, dim=-2)


class CancellableAttnProcessor:
    """diffusers' ``AttnProcessor2_0`` (0.42, the same steps in the same order: spatial norm, 4-D input, mask, group
    norm, q/k/v, head split, q/k norms, output projection, residual, rescale) with the attention itself in
    :func:`scaled_dot_product_attention`, so a cancel lands inside a long attention. Installed by
    :func:`cancel_hooks` for the duration of a call in place of each ``AttnProcessor2_0``."""

    def __init__(self, cancel_check: CancelCheck):
        self.cancel_check = cancel_check

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kw):
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size, sequence_length, _ = (
            hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        )
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        inner_dim = key.shape[-1]
        head_dim = inner_dim // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        hidden_states = scaled_dot_product_attention(query, key, value, attention_mask, self.cancel_check)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def _cancellable_processor(processor, cancel_check: CancelCheck):
    """The processor to use during a cancellable call, or None to keep ``processor``: diffusers' AttnProcessor2_0 ->
    :class:`CancellableAttnProcessor`; a processor with ``with_cancel_check(check)`` (ours) -> what that returns."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    if type(processor) is AttnProcessor2_0:
        return CancellableAttnProcessor(cancel_check)
    if hasattr(processor, "with_cancel_check"):
        return processor.with_cancel_check(cancel_check)
    return None


@contextlib.contextmanager
def cancel_hooks(cancel_check: CancelCheck | None, modules: Iterable[nn.Module]) -> Iterator[None]:
    """Within the block, every forward of ``modules`` calls ``cancel_check`` before each of its cancel points, and
    their attention processors check between query chunks of a long attention (:class:`CancellableAttnProcessor`);
    hooks and processors are put back when the block ends, however it ends. ``cancel_check=None`` changes nothing."""
    if cancel_check is None:
        yield
        return

    def hook(module, args):
        cancel_check()

    handles, swapped = [], []
    try:
        hooked: set[int] = set()
        for module in modules:
            for point in cancel_points(module):
                if id(point) not in hooked:
                    hooked.add(id(point))
                    handles.append(point.register_forward_pre_hook(hook))
            for sub in module.modules():
                processor = getattr(sub, "processor", None)
                replacement = None if processor is None else _cancellable_processor(processor, cancel_check)
                if replacement is not None:
                    swapped.append((sub, processor))
                    sub.processor = replacement
        yield
    finally:
        for handle in handles:
            handle.remove()
        for sub, processor in reversed(swapped):
            sub.processor = processor


def _empty_cells(frame) -> None:
    """Empty the cells ``frame`` made for its nested functions (``frame.clear()`` leaves them to those functions,
    which the frames they ran in still hold): only cells of this frame, reached through functions defined in it."""
    cellvars, nested = set(frame.f_code.co_cellvars), frame.f_code.co_consts  # functions defined here: their code
    local_values = frame.f_locals
    functions = [v for v in local_values.values() if isinstance(v, types.FunctionType)]
    if isinstance(local_values, dict):  # Python < 3.13 caches this snapshot on the frame: it would keep the tensors
        local_values.clear()
    del local_values
    for function in functions:
        if function.__closure__ and any(function.__code__ is const for const in nested):
            for name, cell in zip(function.__code__.co_freevars, function.__closure__):
                if name in cellvars:
                    with contextlib.suppress(ValueError):  # already empty
                        del cell.cell_contents


def release_frames(error: BaseException) -> None:
    """Drop the locals (and closure cells) of the frames ``error`` has left, the tensors of a cancelled run, so a
    caller holding the exception holds no memory; then empty the CUDA cache."""
    tb = error.__traceback__
    first = None if tb is None else tb.tb_next  # the frame that handles it is still running: it cannot be cleared
    try:
        below = first
        while below is not None:
            _empty_cells(below.tb_frame)
            below = below.tb_next
        if first is not None:
            traceback.clear_frames(first)
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - releasing is best effort: never hide the error being raised
        pass


def release_on_error(function):
    """Decorator: when ``function`` raises (a cancel, an out-of-memory error...), the frames below it lose their
    locals before the exception leaves, so the caller holding the exception holds no large tensors."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except BaseException as error:
            release_frames(error)
            raise

    return wrapper
