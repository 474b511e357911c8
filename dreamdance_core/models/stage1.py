"""Stage 1: the Mutually Aligned Geometry Diffusion model (paper section 4.1).

Composition (each trainable part is a diffusers ``ModelMixin`` saved on its own, like AnimateDiff's MotionAdapter):

* ``reference_unet`` - an SD1.5 ``UNet2DConditionModel`` run once per video at timestep 0 on the reference latents;
  its self-attention inputs are recorded and injected into the denoising UNet (keys/values = concat(x, x_ref)).
* ``denoising_unet`` - an SD1.5 ``UNet2DConditionModel`` with a ``projection`` class embedding: the positional-encoded
  one-hot domain (RGB / normal / depth) is added to the time embedding. Its last layer is zero-initialised when
  converted from SD1.5, so the converted UNet reproduces SD1.5 exactly.
* ``pose_guider`` - :class:`PoseGuider`, added after the denoising UNet's ``conv_in``.
* ``adapter`` - :class:`GeometryAdapter`: per self-attention layer, a geometry attention (across modalities) and a
  temporal attention (across frames), both zero-initialised.

The denoising batch is laid out as ``(groups, modalities, frames)`` flattened; groups are CFG branches (or videos in
training). Each module group can be switched on/off (``use_geometry_attention``, ``use_temporal_attention``) and
trained on its own (:meth:`GeometryDiffusionModel.set_trainable`) for the paper's three training steps.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Iterator, Sequence

import torch
from diffusers import UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from diffusers.models.controlnets.controlnet import zero_module
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..weights import WeightFileError, load_model_strict
from .attention import (
    GeometryAttention,
    PoseConvIn,
    ReferenceRecordProcessor,
    Stage1AttentionState,
    Stage1SelfAttnProcessor,
    TemporalAttention,
    reference_runs,
)
from .pose_guider import PoseGuider

NUM_DOMAINS = 3
DOMAIN_IDS = {"rgb": 0, "normal": 1, "depth": 2}
DOMAIN_EMBEDDING_DIM = 2 * NUM_DOMAINS
TRAINABLE_GROUPS = ("base", "geometry", "temporal")


def domain_embedding(domain: torch.Tensor, num_domains: int = NUM_DOMAINS) -> torch.Tensor:
    """Positional-encoded one-hot domain: ``[b]`` ids -> ``[b, 2 * num_domains]`` =
    ``cat(sin(onehot), cos(onehot))``."""
    one_hot = nn.functional.one_hot(domain.long(), num_domains).float()
    return torch.cat([torch.sin(one_hot), torch.cos(one_hot)], dim=-1)


def self_attention_layers(unet: nn.Module) -> list[tuple[str, Attention]]:
    """The spatial self-attention layers (``attn1`` of every transformer block), in module order."""
    return [
        (name, module)
        for name, module in unet.named_modules()
        if isinstance(module, Attention) and name.endswith(".attn1") and ".transformer_blocks." in name
    ]


class GeometryAdapter(ModelMixin, ConfigMixin):
    """Geometry and temporal attention modules for every self-attention layer of the denoising UNet.

    Args:
        layer_names: the UNet's self-attention layer names (``down_blocks.0.attentions.0.transformer_blocks.0.attn1``),
            so weights are matched to layers by name, never by order.
        layer_dims: channels of each layer.
        num_heads: attention heads of every geometry/temporal attention.
    """

    @register_to_config
    def __init__(self, layer_names: list[str], layer_dims: list[int], num_heads: int = 8):
        super().__init__()
        if len(layer_names) != len(layer_dims):
            raise ValueError(f"GeometryAdapter: {len(layer_names)} layer names but {len(layer_dims)} layer dims")
        self.geometry = nn.ModuleList(GeometryAttention(dim, num_heads) for dim in layer_dims)
        self.temporal = nn.ModuleList(TemporalAttention(dim, num_heads) for dim in layer_dims)

    @classmethod
    def from_unet(cls, unet: nn.Module, num_heads: int = 8) -> "GeometryAdapter":
        layers = self_attention_layers(unet)
        return cls([name for name, _ in layers], [attn.to_q.in_features for _, attn in layers], num_heads)


# SD1.5's training noise schedule, as a diffusers scheduler config; "trailing" timestep spacing as the AnimateAnyone
# family samples it. A Stage-1 model trained with another schedule (the CPU demo: v-prediction with a zero terminal
# SNR) carries it in ``<weights>/scheduler/scheduler_config.json``.
SD15_NOISE_SCHEDULE = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    timestep_spacing="trailing",
    prediction_type="epsilon",
    rescale_betas_zero_snr=False,
)
PREDICTION_TYPES = ("epsilon", "v_prediction")
SCHEDULER_CONFIG = "scheduler/scheduler_config.json"


def noise_schedule(prediction_type: str = "epsilon", zero_terminal_snr: bool = False) -> dict:
    """SD1.5's schedule with the given prediction type and, optionally, betas rescaled to a zero terminal SNR (Lin et
    al. 2023: the last timestep is pure noise, which v-prediction can learn and epsilon-prediction cannot)."""
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
    if zero_terminal_snr and prediction_type == "epsilon":
        raise ValueError(
            "a zero terminal SNR needs prediction_type 'v_prediction' (epsilon is undefined at pure noise)"
        )
    return {**SD15_NOISE_SCHEDULE, "prediction_type": prediction_type, "rescale_betas_zero_snr": zero_terminal_snr}


def _read_noise_schedule(path: Path) -> dict | None:
    """The scheduler config of a weights folder (None: absent, i.e. SD1.5's), or a clear error if unreadable."""
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise WeightFileError(
            f"{path} is not a readable scheduler config ({error}); delete it to use SD1.5's"
        ) from None
    if not isinstance(config, dict):
        raise WeightFileError(f"{path} must hold a JSON object (a diffusers scheduler config)")
    return {k: v for k, v in config.items() if k in SD15_NOISE_SCHEDULE}


class GeometryDiffusionModel(nn.Module):
    """Reference UNet + denoising UNet + pose guider + geometry/temporal attention, wired by attention processors.

    ``noise_schedule`` is the diffusers scheduler config the model was trained with (default SD1.5's,
    :data:`SD15_NOISE_SCHEDULE`); samplers build their scheduler from it.
    """

    COMPONENTS = {
        "reference_unet": UNet2DConditionModel,
        "denoising_unet": UNet2DConditionModel,
        "pose_guider": PoseGuider,
        "adapter": GeometryAdapter,
    }

    def __init__(
        self,
        reference_unet: UNet2DConditionModel,
        denoising_unet: UNet2DConditionModel,
        pose_guider: PoseGuider,
        adapter: GeometryAdapter,
        noise_schedule: dict | None = None,
    ):
        super().__init__()
        self.noise_schedule = {**SD15_NOISE_SCHEDULE, **(noise_schedule or {})}
        if self.noise_schedule["prediction_type"] not in PREDICTION_TYPES:
            raise ValueError(f"unsupported prediction_type {self.noise_schedule['prediction_type']!r}: the Stage-1 "
                             f"sampler and trainer handle {PREDICTION_TYPES}")
        config = denoising_unet.config
        if (
            config.class_embed_type != "projection"
            or config.projection_class_embeddings_input_dim != DOMAIN_EMBEDDING_DIM
        ):
            raise ValueError(
                "the denoising UNet needs a 'projection' class embedding of input dim "
                f"{DOMAIN_EMBEDDING_DIM} for the domain embedding, got class_embed_type={config.class_embed_type!r}, "
                f"projection_class_embeddings_input_dim={config.projection_class_embeddings_input_dim}; build it with "
                "GeometryDiffusionModel.from_base_unet"
            )
        if pose_guider.config.embedding_channels != config.block_out_channels[0]:
            raise ValueError(
                f"pose guider embeds to {pose_guider.config.embedding_channels} channels but the denoising UNet's "
                f"conv_in gives {config.block_out_channels[0]}"
            )
        layers = self_attention_layers(denoising_unet)
        reference_layers = self_attention_layers(reference_unet)
        names = [name for name, _ in layers]
        if [name for name, _ in reference_layers] != names:
            raise ValueError("reference UNet and denoising UNet must have the same self-attention layers")
        if list(adapter.config.layer_names) != names:
            raise ValueError(
                f"geometry adapter was built for layers {list(adapter.config.layer_names)[:3]}... but the denoising "
                f"UNet has {names[:3]}... ({len(adapter.config.layer_names)} vs {len(names)} layers)"
            )
        self.reference_unet = reference_unet
        self.denoising_unet = denoising_unet
        self.pose_guider = pose_guider
        self.adapter = adapter
        self.use_geometry_attention = True
        self.use_temporal_attention = True
        self.attention_state = Stage1AttentionState()
        self._install_processors(names)

    # ------------------------------------------------------------------ construction
    def _install_processors(self, names: list[str]) -> None:
        state = self.attention_state
        index = {name: i for i, name in enumerate(names)}

        def layer(key: str) -> str:  # "down_blocks.0....attn1.processor" -> "down_blocks.0....attn1"
            return key.rsplit(".processor", 1)[0]

        self.reference_unet.set_attn_processor({
            key: ReferenceRecordProcessor(state, layer(key)) if layer(key) in index else AttnProcessor2_0()
            for key in self.reference_unet.attn_processors
        })
        self.denoising_unet.set_attn_processor({
            key: Stage1SelfAttnProcessor(
                state, layer(key), self.adapter.geometry[index[layer(key)]], self.adapter.temporal[index[layer(key)]]
            )
            if layer(key) in index
            else AttnProcessor2_0()
            for key in self.denoising_unet.attn_processors
        })
        # pose features are added after conv_in by a conv_in that reads them from the state (set per forward)
        if isinstance(self.denoising_unet.conv_in, PoseConvIn):
            self.denoising_unet.conv_in.attention_state = state
        else:
            self.denoising_unet.conv_in = PoseConvIn.from_conv(self.denoising_unet.conv_in, state)

    @classmethod
    def from_base_unet(
        cls,
        unet: UNet2DConditionModel,
        *,
        pose_guider_channels: tuple[int, ...] = (16, 32, 96, 256),
        attention_heads: int = 8,
        noise_schedule: dict | None = None,
    ) -> "GeometryDiffusionModel":
        """Build Stage 1 from an SD1.5-style UNet: both UNets start as copies of it; new parts are zero-initialised."""
        base_state = unet.state_dict()
        reference_unet = UNet2DConditionModel.from_config(unet.config)
        reference_unet.load_state_dict(base_state, strict=True)
        denoising_config = {k: v for k, v in unet.config.items() if not k.startswith("_")}
        denoising_config.update(
            class_embed_type="projection", projection_class_embeddings_input_dim=DOMAIN_EMBEDDING_DIM
        )
        denoising_unet = UNet2DConditionModel.from_config(denoising_config)
        result = denoising_unet.load_state_dict(base_state, strict=False)
        unexpected_missing = [k for k in result.missing_keys if not k.startswith("class_embedding.")]
        if unexpected_missing or result.unexpected_keys:
            raise WeightFileError(
                f"base UNet does not fit the SD1.5 layout: missing {unexpected_missing[:8]}, "
                f"unexpected {result.unexpected_keys[:8]}"
            )
        zero_module(denoising_unet.class_embedding.linear_2)
        pose_guider = PoseGuider(
            conditioning_channels=3,
            block_out_channels=tuple(pose_guider_channels),
            embedding_channels=unet.config.block_out_channels[0],
        )
        adapter = GeometryAdapter.from_unet(denoising_unet, num_heads=attention_heads)
        model = cls(reference_unet, denoising_unet, pose_guider, adapter, noise_schedule)
        return model.to(device=unet.device, dtype=unet.dtype)

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """Write every component as ``<folder>/<component>/{config.json, diffusion_pytorch_model.safetensors}`` and
        the noise schedule as ``<folder>/scheduler/scheduler_config.json``."""
        for name in self.COMPONENTS:
            getattr(self, name).save_pretrained(Path(folder) / name, safe_serialization=True)
        schedule = Path(folder) / SCHEDULER_CONFIG
        schedule.parent.mkdir(parents=True, exist_ok=True)
        schedule.write_text(json.dumps({"_class_name": "DDIMScheduler", **self.noise_schedule}, indent=1) + "\n")

    @classmethod
    def from_pretrained(
        cls, folder: str | os.PathLike, *, dtype: torch.dtype | None = None
    ) -> "GeometryDiffusionModel":
        """Load a folder written by :meth:`save_pretrained`, strictly (every key of every component must match)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise WeightFileError(
                f"DreamDance Stage-1 weights folder {folder} does not exist. It holds the sub-folders "
                f"{', '.join(cls.COMPONENTS)} written by train/stage1.py (or GeometryDiffusionModel.save_pretrained)."
            )
        parts = {name: load_model_strict(kind, folder / name, dtype=dtype) for name, kind in cls.COMPONENTS.items()}
        return cls(**parts, noise_schedule=_read_noise_schedule(folder / SCHEDULER_CONFIG))

    # ------------------------------------------------------------------ training support
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by training group: ``base`` (both UNets + pose guider), ``geometry``, ``temporal``."""
        return {
            "base": [
                *self.reference_unet.parameters(),
                *self.denoising_unet.parameters(),
                *self.pose_guider.parameters(),
            ],
            "geometry": list(self.adapter.geometry.parameters()),
            "temporal": list(self.adapter.temporal.parameters()),
        }

    def set_trainable(self, *groups: str) -> list[nn.Parameter]:
        """Make exactly ``groups`` trainable (everything else frozen); returns the trainable parameters."""
        unknown = set(groups) - set(TRAINABLE_GROUPS)
        if unknown:
            raise ValueError(f"unknown trainable group(s) {sorted(unknown)}; choose from {TRAINABLE_GROUPS}")
        trainable = []
        for group, parameters in self.parameter_groups().items():
            for parameter in parameters:
                parameter.requires_grad_(group in groups)
            if group in groups:
                trainable.extend(parameters)
        return trainable

    def enable_gradient_checkpointing(self) -> None:
        """Recompute both UNets' blocks during backward to save memory.

        Our processors read ``attention_state``, which :meth:`forward` resets when it returns - before backward
        recomputes the blocks. The checkpoint function therefore snapshots the state at forward time and puts it
        back for the recomputation (otherwise torch sees different saved tensors and refuses).
        """
        from torch.utils.checkpoint import checkpoint

        state = self.attention_state

        @contextlib.contextmanager
        def restored(snapshot: dict) -> Iterator[None]:
            saved = dict(vars(state))
            vars(state).update(snapshot)
            try:
                yield
            finally:
                vars(state).update(saved)

        def checkpoint_function(function, *args, **kwargs):
            snapshot = dict(vars(state))
            contexts = lambda: (contextlib.nullcontext(), restored(snapshot))  # noqa: E731
            return checkpoint(function, *args, use_reentrant=False, context_fn=contexts, **kwargs)

        for unet in (self.reference_unet, self.denoising_unet):
            unet.enable_gradient_checkpointing(checkpoint_function)

    # ------------------------------------------------------------------ forward passes
    @contextlib.contextmanager
    def _attention(self, **fields) -> Iterator[None]:
        state = self.attention_state
        saved = dict(vars(state))
        for key, value in fields.items():
            setattr(state, key, value)
        try:
            yield
        finally:
            for key, value in saved.items():
                setattr(state, key, value)

    def encode_reference(
        self, reference_latents: torch.Tensor, encoder_hidden_states: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Run the reference UNet once (timestep 0) and return its self-attention features per layer.

        Args:
            reference_latents: ``[R, 4, h, w]`` VAE latents of the reference image(s).
            encoder_hidden_states: ``[R, S, C]`` their CLIP image embeddings.
        """
        record: dict[str, torch.Tensor] = {}
        timestep = torch.zeros(reference_latents.shape[0], device=reference_latents.device, dtype=torch.long)
        with self._attention(record=record, reference=None, geometry=False, temporal=False):
            self.reference_unet(reference_latents, timestep, encoder_hidden_states=encoder_hidden_states)
        return record

    def encode_pose(self, pose_maps: torch.Tensor) -> torch.Tensor:
        """Pose guider features ``[F, C0, h, w]`` of rendered pose maps ``[F, 3, H, W]`` (once per video)."""
        return self.pose_guider(pose_maps)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        pose_features: torch.Tensor,
        domain: torch.Tensor,
        *,
        num_modalities: int,
        num_frames: int,
        reference: dict[str, torch.Tensor] | None = None,
        reference_index: Sequence[int] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the noise of a ``(groups, modalities, frames)``-flattened batch.

        Args:
            sample: ``[B, 4, h, w]`` noisy latents, ``B = groups * num_modalities * num_frames``.
            timestep: diffusion timestep(s).
            encoder_hidden_states: ``[B, S, C]`` CLIP image embeddings (zeros where the reference is dropped).
            pose_features: ``[B, C0, h, w]`` pose guider output for each sample.
            domain: ``[B]`` domain ids (0 RGB, 1 normal, 2 depth).
            num_modalities, num_frames: the batch layout.
            reference: :meth:`encode_reference` output (None: no reference injection at all).
            reference_index: ``[B]`` which reference each sample attends to, ``-1`` for none: a list of ints (known on
                the host: no device sync, one compiled graph) or a tensor (read once per call: one sync).
        """
        # 1. the layout must explain the batch
        batch = sample.shape[0]
        if batch % (num_modalities * num_frames):
            raise ValueError(
                f"batch of {batch} latents is not groups x {num_modalities} modalities x {num_frames} frames"
            )
        for name, tensor in (
            ("encoder_hidden_states", encoder_hidden_states), ("pose_features", pose_features), ("domain", domain)
        ):
            if tensor.shape[0] != batch:
                raise ValueError(f"{name} has {tensor.shape[0]} entries for a batch of {batch} latents")
        if pose_features.shape[-2:] != sample.shape[-2:]:
            raise ValueError(
                f"pose features are {tuple(pose_features.shape[-2:])} but latents are {tuple(sample.shape[-2:])}: "
                "the pose maps must have the image size, and the pose guider must downsample by the VAE's factor "
                "(8 for SD)"
            )
        # 2. domain embedding, added to the time embedding through the UNet's projection class embedding
        class_labels = domain_embedding(domain).to(device=sample.device, dtype=sample.dtype)
        # 3. pose features added right after conv_in (PoseConvIn reads them from the state)
        with self._attention(
            num_modalities=num_modalities,
            num_frames=num_frames,
            reference=reference,
            reference_runs=reference_runs(reference_index) if reference is not None else None,
            geometry=self.use_geometry_attention,
            temporal=self.use_temporal_attention,
            record=None,
            pose_features=pose_features,
        ):
            # 4. the denoising UNet with reference injection + geometry + temporal attention in its processors
            return self.denoising_unet(
                sample, timestep, encoder_hidden_states=encoder_hidden_states, class_labels=class_labels
            ).sample
