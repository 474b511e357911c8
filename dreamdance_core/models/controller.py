"""Cross-domain controller (paper section 4.2, eq. 7): ``f_i = GeoAttn(F_p(p_i), F_d(d_i), F_n(n_i))``.

Each control modality (pose, depth, normal by default; the list is configuration, so a DensePose or SMPL render is
one more name) has its own light conv encoder ``F_m`` that maps the ``[frames, 3, H, W]`` map in -1..1 to a feature
at latent resolution. The encoded features are fused by the same :class:`GeometryAttention` as Stage 1 (each
modality's tokens attend to the tokens of all modalities; zero-initialised output, so it starts as a no-op) and summed
over the modalities into the guidance feature that the SVD ControlNet adds after its ``conv_in``.

``geometry_tokens`` chooses what attends to what:

* ``"pixel"`` (default): at every latent position the modalities attend to each other (``m`` tokens per position).
  Cheap at any resolution; the conv encoders supply the spatial context.
* ``"frame"``: all positions of all modalities of a frame attend jointly, as Stage 1's eq. 5 does. Quadratic in the
  number of latent positions (at 512x768 that is 3 x 6144 tokens per frame): for small sizes or big GPUs.

Frames are independent: a frame's guidance feature depends only on that frame's maps.
"""

from __future__ import annotations

from typing import Literal, Mapping

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from einops import rearrange
from torch import nn

from ..modalities import DEFAULT_MODALITIES
from ..robust_conditioning import ABSENT_VALUE
from .attention import GeometryAttention

GeometryTokens = Literal["pixel", "frame"]


class ControlMapError(ValueError):
    """Control maps that do not fit the controller or each other (names, frame counts, sizes)."""


class ModalityEncoder(nn.Module):
    """``F_m``: conv stack from a 3-channel map to a feature ``2**(len(channels)-1)`` times smaller.

    Like diffusers' ``ControlNetConditioningEmbedding``: conv + SiLU per level, a stride-2 conv between levels, and a
    final conv to ``out_channels``.
    """

    def __init__(self, in_channels: int, channels: tuple[int, ...], out_channels: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels[0], 3, padding=1), nn.SiLU()]
        for current, following in zip(channels[:-1], channels[1:]):
            layers += [nn.Conv2d(current, current, 3, padding=1), nn.SiLU()]
            layers += [nn.Conv2d(current, following, 3, padding=1, stride=2), nn.SiLU()]
        layers.append(nn.Conv2d(channels[-1], out_channels, 3, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[n, in_channels, H, W]`` -> ``[n, out_channels, H / s, W / s]``."""
        return self.layers(x)


class CrossDomainController(ModelMixin, ConfigMixin):
    """Per-modality conv encoders fused by geometry attention into one guidance feature per frame.

    Args:
        modalities: names of the control maps, in order (pose, depth, normal in the paper).
        in_channels: channels of every control map (3: they are images).
        block_channels: encoder widths per level; ``len - 1`` stride-2 convs, so the downscale factor is
            ``2 ** (len(block_channels) - 1)`` and must equal the VAE's (8 for SVD).
        out_channels: width of the guidance feature = the ControlNet's ``block_out_channels[0]`` (320 for SVD).
        geometry_attention: fuse with geometry attention (off: plain sum of the encoded features).
        geometry_tokens: ``"pixel"`` or ``"frame"`` (see the module docstring).
        attention_heads: heads of the geometry attention; must divide ``out_channels``.
    """

    @register_to_config
    def __init__(
        self,
        modalities: tuple[str, ...] = DEFAULT_MODALITIES,
        in_channels: int = 3,
        block_channels: tuple[int, ...] = (16, 32, 96, 256),
        out_channels: int = 320,
        geometry_attention: bool = True,
        geometry_tokens: GeometryTokens = "pixel",
        attention_heads: int = 8,
    ):
        super().__init__()
        modalities = tuple(modalities)
        if not modalities:
            raise ValueError("CrossDomainController: give at least one modality name, e.g. ('pose', 'depth', 'normal')")
        if len(set(modalities)) != len(modalities):
            raise ValueError(f"CrossDomainController: modality names must be unique, got {modalities}")
        if not block_channels or min(block_channels) < 1:
            raise ValueError(f"CrossDomainController: block_channels must be positive widths, got {block_channels}")
        if geometry_tokens not in ("pixel", "frame"):
            raise ValueError(
                f"CrossDomainController: geometry_tokens must be 'pixel' or 'frame', got {geometry_tokens!r}"
            )
        self.encoders = nn.ModuleDict(
            {name: ModalityEncoder(in_channels, tuple(block_channels), out_channels) for name in modalities}
        )
        self.geometry = GeometryAttention(out_channels, attention_heads) if geometry_attention else None

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.config.modalities)

    @property
    def downscale_factor(self) -> int:
        """How much smaller the guidance feature is than the control maps (must match the VAE)."""
        return 2 ** (len(self.config.block_channels) - 1)

    def check_maps(self, controls: Mapping[str, torch.Tensor], size: tuple[int, int] | None = None) -> int:
        """Validate the control maps (names, ``[f, 3, H, W]``, equal frame counts and sizes); return the frame count.

        ``size`` is the requested ``(width, height)``; the maps must have exactly that size.
        """
        names = set(controls)
        if names != set(self.modalities):
            raise ControlMapError(
                f"the controller was built for the control maps {list(self.modalities)} but got {sorted(names)}; "
                f"pass exactly these (a missing map can be given as an all -1 image)"
            )
        frames, shape = {}, {}
        for name in self.modalities:
            maps = controls[name]
            if maps.ndim != 4 or maps.shape[1] != self.config.in_channels:
                raise ControlMapError(
                    f"{name} maps must be [frames, {self.config.in_channels}, height, width], got {tuple(maps.shape)}"
                )
            frames[name], shape[name] = maps.shape[0], (maps.shape[3], maps.shape[2])
        if len(set(frames.values())) != 1:
            raise ControlMapError(
                f"the control maps have different frame counts {frames}; give every modality one map per frame"
            )
        if len(set(shape.values())) != 1:
            raise ControlMapError(
                f"the control maps have different sizes (width, height) {shape}; resize them to one size"
            )
        count, map_size = next(iter(frames.values())), next(iter(shape.values()))
        if count < 1:
            raise ControlMapError("the control maps hold no frames; give at least 1 frame")
        if size is not None and tuple(size) != map_size:
            raise ControlMapError(
                f"the control maps are {map_size[0]}x{map_size[1]} (width x height) but the video is requested at "
                f"{size[0]}x{size[1]}; resize the maps or request their size"
            )
        factor = self.downscale_factor
        if map_size[0] % factor or map_size[1] % factor:
            raise ControlMapError(
                f"control map size {map_size[0]}x{map_size[1]} is not divisible by the controller's downscale factor "
                f"{factor}; use a multiple of {factor}"
            )
        return count

    def encode_modality(self, name: str, maps: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
        """``F_m`` of one modality's maps ``[f, 3, H, W]`` -> ``[f, c, h, w]``, at ``strength``:
        ``F(black) + strength * (F(maps) - F(black))``, where the black map (``ABSENT_VALUE`` everywhere) is what
        robust conditioning trained the model to read as "this map is absent". So 0 is exactly the absent map, 1 the
        map itself, and values in between (or beyond) move along the line between the two features."""
        maps = maps.to(next(self.parameters()).dtype)
        if strength == 1.0:
            return self.encoders[name](maps)
        black = self.encoders[name](torch.full_like(maps, ABSENT_VALUE))  # all frames: bit-equal to feeding black maps
        if strength == 0.0:
            return black
        return black + strength * (self.encoders[name](maps) - black)

    def encode(
        self, controls: Mapping[str, torch.Tensor], strengths: Mapping[str, float] | None = None
    ) -> torch.Tensor:
        """Per-modality features after geometry attention, ``[f, m, c, h, w]`` (before the sum over modalities).

        ``strengths``: per modality, where its feature lies between the absent (black) map's, 0, and the given map's,
        1 (missing names: 1.0); see :meth:`encode_modality`. A strength acts before geometry attention, so 0 gives
        exactly what feeding that modality's black map gives.
        """
        self.check_maps(controls)
        strengths = dict(strengths or {})
        unknown = set(strengths) - set(self.modalities)
        if unknown:
            raise ControlMapError(
                f"strengths given for unknown modalities {sorted(unknown)}; known: {list(self.modalities)}"
            )
        # 1. encode each modality at its strength: [f, 3, H, W] -> [f, c, h, w]
        features = torch.stack(
            [self.encode_modality(name, controls[name], float(strengths.get(name, 1.0))) for name in self.modalities],
            dim=1,
        )  # [f, m, c, h, w]
        if self.geometry is None:
            return features
        # 2. geometry attention across modalities (eq. 7), residual
        f, m, c, h, w = features.shape
        if self.config.geometry_tokens == "pixel":
            tokens = rearrange(features, "f m c h w -> (f h w) m 1 c")
            delta = rearrange(self.geometry(tokens), "(f h w) m 1 c -> f m c h w", f=f, h=h, w=w)
        else:
            tokens = rearrange(features, "f m c h w -> f m (h w) c")
            delta = rearrange(self.geometry(tokens), "f m (h w) c -> f m c h w", h=h, w=w)
        return features + delta

    def forward(
        self, controls: Mapping[str, torch.Tensor], strengths: Mapping[str, float] | None = None
    ) -> torch.Tensor:
        """Guidance feature ``[f, out_channels, H / s, W / s]`` from maps ``{name: [f, 3, H, W]}`` in -1..1."""
        return self.encode(controls, strengths).sum(dim=1)
