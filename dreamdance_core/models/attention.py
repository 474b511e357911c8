"""Attention pieces of DreamDance: geometry attention, temporal attention and the Stage-1 attention processors.

The layers hold the weights; the processors hold the math and read an explicit state object
(:class:`Stage1AttentionState`) that the model fills for the duration of one forward pass. Nothing here patches
diffusers: processors are installed with ``set_attn_processor``.

Token layouts (``b`` = groups such as CFG branches x frames, ``m`` = modalities, ``f`` = frames, ``n`` = tokens):

* geometry attention (paper eq. 5): every modality's queries attend to the keys/values of all modalities of the
  same frame, i.e. joint attention over ``[b, m * n, c]``;
* temporal attention: every token attends to the same token in the other frames of the window, ``[b * n, f, c]``,
  with a sinusoidal frame-position encoding.

Both return a residual *delta* whose output projection is zero-initialised, so a freshly added module changes
nothing.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from diffusers.models.controlnets.controlnet import zero_module
from einops import rearrange
from torch import nn

from ..cancel import CancellableAttnProcessor, scaled_dot_product_attention


class _ZeroInitAttention(nn.Module):
    """Pre-norm self-attention whose output projection starts at zero (adding it changes nothing until trained)."""

    def __init__(self, dim: int, num_heads: int = 8):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"{type(self).__name__}: dim {dim} is not divisible by num_heads {num_heads}")
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(query_dim=dim, heads=num_heads, dim_head=dim // num_heads, out_bias=True)
        zero_module(self.attn.to_out[0])


class GeometryAttention(_ZeroInitAttention):
    """Joint attention across the modalities of one frame (paper eq. 5 and 7); output projection zero-initialised."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[b, m, n, c]`` -> residual delta of the same shape."""
        num_modalities = x.shape[1]
        joint = rearrange(x, "b m n c -> b (m n) c")
        out = self.attn(self.norm(joint))
        return rearrange(out, "b (m n) c -> b m n c", m=num_modalities)


def sinusoidal_positions(num_positions: int, dim: int, device=None, dtype=None) -> torch.Tensor:
    """Transformer sinusoidal encoding ``[num_positions, dim]`` (any length: no table to outgrow)."""
    position = torch.arange(num_positions, device=device, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    encoding = torch.zeros(num_positions, dim, device=device)
    encoding[:, 0::2] = torch.sin(position * frequency)
    encoding[:, 1::2] = torch.cos(position * frequency)[:, : dim // 2]
    return encoding.to(dtype=dtype)


class TemporalAttention(_ZeroInitAttention):
    """Attention across the frames of a window, per token position; output projection zero-initialised."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[b, f, n, c]`` -> residual delta of the same shape."""
        b, f, n, c = x.shape
        tokens = rearrange(x, "b f n c -> (b n) f c")
        tokens = self.norm(tokens) + sinusoidal_positions(f, c, device=x.device, dtype=x.dtype)
        out = self.attn(tokens)
        return rearrange(out, "(b n) f c -> b f n c", b=b)


@dataclass
class Stage1AttentionState:
    """What the Stage-1 processors need to know about the current forward pass.

    The denoising batch is laid out as ``(groups, modalities, frames)`` flattened, groups being e.g. the
    conditional/unconditional CFG branches.

    Attributes:
        num_modalities: modalities per group (3 for joint RGB/normal/depth, 1 for single-modality training).
        num_frames: frames per group and modality.
        reference: per self-attention layer name, the reference UNet's features ``[R, N, C]`` (None: no injection).
        reference_runs: which reference each sample attends to, as :func:`reference_runs` of the host-side
            per-sample index (``-1`` = none: a dropped reference, the unconditional CFG branch); None: no sample does.
            Known on the host, so no attention layer asks the device (no sync, one compiled graph).
        geometry: whether geometry attention runs.
        temporal: whether temporal attention runs.
        record: when not None, the reference UNet's processors write their features into this dict.
        pose_features: ``[batch, C0, h, w]`` added to the denoising UNet's ``conv_in`` output (:class:`PoseConvIn`).
    """

    num_modalities: int = 1
    num_frames: int = 1
    reference: dict[str, torch.Tensor] | None = None
    reference_runs: tuple[tuple[int, int, tuple[int, ...] | None], ...] | None = None
    geometry: bool = False
    temporal: bool = False
    record: dict[str, torch.Tensor] | None = field(default=None)
    pose_features: torch.Tensor | None = None


def reference_runs(index) -> tuple[tuple[int, int, tuple[int, ...] | None], ...] | None:
    """Host-side plan of the reference attention: ``index`` (``[batch]`` ints, or a tensor: read once, a sync), which
    reference each sample attends to (``-1``: none), as runs of consecutive samples ``(start, stop, references)``,
    ``references`` None for a run that sees no reference; None when no sample sees one.
    ``[0, 0, -1, -1]`` -> ``((0, 2, (0, 0)), (2, 4, None))``."""
    if index is None:
        return None
    values = [int(i) for i in (index.tolist() if isinstance(index, torch.Tensor) else index)]
    if all(i < 0 for i in values):
        return None
    runs, start = [], 0
    for position in range(1, len(values) + 1):
        if position == len(values) or (values[position] < 0) != (values[start] < 0):
            refs = tuple(values[start:position])
            runs.append((start, position, None if refs[0] < 0 else refs))
            start = position
    return tuple(runs)


class PoseConvIn(nn.Conv2d):
    """The denoising UNet's ``conv_in`` (the same parameters, so the same state-dict keys) plus the state's
    ``pose_features`` when set. A module in place of a hook registered per call, which would break a compiled graph
    and leave hooks on the model between calls."""

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, state: Stage1AttentionState) -> "PoseConvIn":
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                  dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None,
                  padding_mode=conv.padding_mode, device="meta")
        new.weight, new.bias = conv.weight, conv.bias
        new.attention_state = state
        return new.train(conv.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        pose = self.attention_state.pose_features
        return out if pose is None else out + pose


class ReferenceRecordProcessor:
    """Reference UNet self-attention: plain attention that also records its input features for injection."""

    def __init__(self, state: Stage1AttentionState, name: str):
        self.state = state
        self.name = name
        self.inner = AttnProcessor2_0()

    def with_cancel_check(self, cancel_check) -> "ReferenceRecordProcessor":
        """A copy whose attention checks ``cancel_check`` between query chunks (:mod:`dreamdance_core.cancel`)."""
        twin = copy.copy(self)
        twin.inner = CancellableAttnProcessor(cancel_check)
        return twin

    def __call__(
        self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None, temb=None
    ):
        if self.state.record is not None:
            self.state.record[self.name] = hidden_states
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


class Stage1SelfAttnProcessor:
    """Denoising-UNet self-attention: reference injection (eq. 4) + geometry attention (eq. 5) + temporal attention.

    1. self-attention whose keys/values are ``concat(x, x_ref)`` along the sequence, ``x_ref`` taken from the
       reference UNet's same layer; samples without a reference (``-1``) attend over ``x`` alone, in a call of their
       own: no mask, so each call may use FlashAttention, and the dropped branch spends nothing on reference tokens;
    2. plus geometry attention across the modalities of each frame (when enabled);
    3. plus temporal attention across the frames of each modality (when enabled).
    The three results are summed into the block's residual stream by the surrounding transformer block.
    """

    def __init__(
        self,
        state: Stage1AttentionState,
        name: str,
        geometry: GeometryAttention | None = None,
        temporal: TemporalAttention | None = None,
    ):
        self.state = state
        self.name = name
        self.geometry = geometry
        self.temporal = temporal
        self.cancel_check = None

    def with_cancel_check(self, cancel_check) -> "Stage1SelfAttnProcessor":
        """A copy whose attention checks ``cancel_check`` between query chunks (:mod:`dreamdance_core.cancel`)."""
        twin = copy.copy(self)
        twin.cancel_check = cancel_check
        return twin

    def _self_attention(self, attn: Attention, x: torch.Tensor) -> torch.Tensor:
        # x: [B, N, C]
        heads = attn.heads
        query, key, value = (rearrange(layer(x), "b n (h d) -> b h n d", h=heads)
                             for layer in (attn.to_q, attn.to_k, attn.to_v))
        features = None if self.state.reference is None else self.state.reference.get(self.name)
        runs = self.state.reference_runs
        if features is None or runs is None:
            out = scaled_dot_product_attention(query, key, value, None, self.cancel_check)
        else:
            # keys/values of the reference tokens, once per reference: [R, h, Nr, d]
            ref_key, ref_value = (rearrange(layer(features), "r n (h d) -> r h n d", h=heads)
                                  for layer in (attn.to_k, attn.to_v))
            out = []
            for start, stop, refs in runs:  # no mask: a run sees concat(x, x_ref) or x alone (flash-eligible)
                q, k, v = query[start:stop], key[start:stop], value[start:stop]
                if refs is not None:
                    if len(set(refs)) == 1:  # one reference for the run (sampling): a view, no gather
                        rk = ref_key[refs[0]].expand(stop - start, -1, -1, -1)
                        rv = ref_value[refs[0]].expand(stop - start, -1, -1, -1)
                    else:
                        rk, rv = ref_key[list(refs)], ref_value[list(refs)]
                    k, v = torch.cat([k, rk], dim=2), torch.cat([v, rv], dim=2)
                out.append(scaled_dot_product_attention(q, k, v, None, self.cancel_check))
            out = out[0] if len(out) == 1 else torch.cat(out, dim=0)
        out = rearrange(out, "b h n d -> b n (h d)")
        return attn.to_out[1](attn.to_out[0](out))

    def __call__(
        self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None, temb=None
    ):
        if hidden_states.ndim != 3:
            raise ValueError(
                f"Stage-1 self-attention expects [batch, tokens, channels], got {tuple(hidden_states.shape)}"
            )
        state = self.state
        # 1. self-attention with reference injection
        out = self._self_attention(attn, hidden_states)
        grouped = None
        if (state.geometry and self.geometry is not None) or (state.temporal and self.temporal is not None):
            # [(g m f), n, c] -> [g, m, f, n, c]
            grouped = rearrange(hidden_states, "(g m f) n c -> g m f n c", m=state.num_modalities, f=state.num_frames)
        # 2. geometry attention: modalities of the same frame attend to each other
        if state.geometry and self.geometry is not None:
            delta = self.geometry(rearrange(grouped, "g m f n c -> (g f) m n c"))
            out = out + rearrange(delta, "(g f) m n c -> (g m f) n c", f=state.num_frames)
        # 3. temporal attention: frames of the same modality attend to each other
        if state.temporal and self.temporal is not None:
            delta = self.temporal(rearrange(grouped, "g m f n c -> (g m) f n c"))
            out = out + rearrange(delta, "(g m) f n c -> (g m f) n c", m=state.num_modalities)
        return out
