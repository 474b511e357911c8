"""The control modalities of Stage 2, registered by name: how each map is stored, estimated, rendered and padded.

The cross-domain controller (:mod:`dreamdance_core.models.controller`) takes its list of modalities from its config;
every edge that meets a map by name asks this registry: the dataset (its codec), data preparation (its estimators),
the synthetic generator (its renderer), the nodes' and the command line's fitting (its pad value). pose, depth and
normal are registered here by default. Adding a fourth map (a DensePose or SMPL render, a silhouette) is one
:func:`register` call, made before the registry is read (at import time of the module that defines it)::

    from dreamdance_core.dataset import ImageCodec
    from dreamdance_core.modalities import Modality, register

    register(Modality(
        name="silhouette",
        codec=ImageCodec("silhouette", 1, np.uint8, encode=..., decode=..., control=...),
        synthetic=lambda frames: frames.mask,  # the mannequin's exact ground truth -> values
        estimators={"my-matting": lambda argument, options: my_estimator},
        pad_value=-1.0,
    ))

after which ``train/prepare_data.py convert --modalities pose depth normal silhouette``, the synthetic generator
(``generate_dataset(..., modalities=["silhouette"])``), ``train/stage2.py --modalities pose depth normal silhouette``
and the DreamDance Control Map node (its modality list) know it, with no edit to them, the controller or the sampler.

Plug-ins reach every process (a training run, the command line, ComfyUI) without an edit anywhere: a function
``register_modalities(registry)`` that calls ``registry.register(...)`` (``registry`` is this module, so the codec
classes are ``registry.ImageCodec`` / ``registry.MapCodec``; inside ComfyUI this package is imported under the pack's
name, so plug-ins use the module they are given rather than importing ``dreamdance_core``), named either by an entry
point of the group ``dreamdance.modalities`` of an installed package, or as ``package.module:function`` in the
environment variable ``DREAMDANCE_MODALITIES`` (comma-separated). They are loaded once, when the registry is first read.

A control map that is *absent* (not given, dropped by robust conditioning, strength 0) is black for every modality
(:data:`dreamdance_core.robust_conditioning.ABSENT_VALUE`); ``pad_value`` is what "nothing there" is inside a given
map (the bars when a map of another aspect ratio is fitted by padding: mid-grey for normals, black for the others).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .dataset import DEPTH, FRAMES, MASK, NORMAL, POSE, ImageCodec, MapCodec, PoseCodec, depth_to_unit
from .fit import PAD_VALUES

if TYPE_CHECKING:
    import torch

DEFAULT_MODALITIES: tuple[str, ...] = ("pose", "depth", "normal")
"""The paper's control maps, in the controller's order."""
PLUGIN_ENVIRONMENT = "DREAMDANCE_MODALITIES"
PLUGIN_ENTRY_POINTS = "dreamdance.modalities"
__all__ = ["DEFAULT_MODALITIES", "ControlMap", "ImageCodec", "MapCodec", "Modality", "ModalityError", "PoseCodec",
           "add_control_map", "codecs", "control_inputs", "estimator", "get", "load_plugins", "names", "register"]

Estimator = Callable[..., Any]
"""``fn(video: dreamdance_core.estimators.VideoFrames, *values of the modalities it requires) -> values``."""
EstimatorFactory = Callable[[str | None, Mapping[str, Any]], Estimator]
"""``factory(argument, options) -> estimator``: ``argument`` is what follows ``name:`` in a spec (or None),
``options`` the data-preparation options (e.g. ``normal_depth_scale``)."""


class ModalityError(ValueError):
    """An unknown or conflicting modality name, or a control-map list that does not fit; the message lists the
    names that would work."""


@dataclass(frozen=True)
class Modality:
    """One control modality.

    Args:
        name: the name the controller, the dataset, the nodes and the command lines use.
        codec: how its maps are stored in a video folder and read back, and turned into control maps
            (:class:`dreamdance_core.dataset.MapCodec`).
        synthetic: the procedural mannequin's renderer: ``fn(frames: dreamdance_core.synthetic.Frames) -> values``
            of a whole clip, from its exact ground truth (depth, normals, mask, part labels, keypoints).
        estimators: built-in estimators for data preparation, spec -> factory; a spec ``"name:<argument>"`` takes an
            argument (e.g. ``"transformers:<model>"``). Any ``package.module:function`` works as well.
        default_estimator: the spec used when data preparation is given none (None: one must be given).
        requires: modalities whose values the estimator takes after the video (normals from depth).
        pad_value: "nothing there" inside the map, in -1..1 (padding when fitting another aspect ratio).
        description: one line for help texts and tooltips.
    """

    name: str
    codec: MapCodec
    synthetic: Callable[[Any], Any]
    estimators: Mapping[str, EstimatorFactory] = field(default_factory=dict)
    default_estimator: str | None = None
    requires: tuple[str, ...] = ()
    pad_value: float = -1.0
    description: str = ""


_REGISTRY: dict[str, Modality] = {}
_PLUGINS_LOADED = False
_RESERVED = {FRAMES.where, MASK.where, "meta.json"}  # places in a video folder that are not control maps


def register(modality: Modality, replace: bool = False) -> Modality:
    """Add ``modality`` (``replace``: overwrite one of the same name); returns it."""
    if not modality.name or not modality.name.replace("_", "").replace("-", "").isalnum():
        raise ModalityError(f"a modality name must be letters, digits, '_' or '-', got {modality.name!r}")
    if modality.name in _REGISTRY and not replace:
        raise ModalityError(f"modality {modality.name!r} is already registered; pass replace=True to change it")
    taken = {m.codec.where: m.name for m in _REGISTRY.values() if m.name != modality.name}
    if modality.codec.where in _RESERVED or modality.codec.where in taken:
        owner = taken.get(modality.codec.where, "the dataset layout")
        raise ModalityError(f"modality {modality.name!r} would store its maps in {modality.codec.where!r}, which "
                            f"{owner} uses; give its codec another folder")
    unknown = [r for r in modality.requires if r not in _REGISTRY and r != modality.name]
    if unknown:
        raise ModalityError(f"modality {modality.name!r} requires {unknown}, which are not registered")
    _REGISTRY[modality.name] = modality
    return modality


def load_plugins(force: bool = False) -> None:
    """Call the plug-ins' ``register_modalities(registry)`` once (``force``: again): the ``package.module:function``
    entries of ``$DREAMDANCE_MODALITIES`` (comma-separated), then the entry points of ``dreamdance.modalities``."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED and not force:
        return
    _PLUGINS_LOADED = True
    import os
    import sys
    from importlib.metadata import entry_points

    this = sys.modules[__name__]
    specs = [spec.strip() for spec in os.environ.get(PLUGIN_ENVIRONMENT, "").split(",") if spec.strip()]
    for spec in specs:
        module_name, _, function = spec.partition(":")
        try:
            plugin = getattr(importlib.import_module(module_name), function or "register_modalities")
        except (ImportError, AttributeError, ValueError) as exc:
            raise ModalityError(f"${PLUGIN_ENVIRONMENT} names {spec!r}, which cannot be loaded ({exc}); give "
                                "package.module:function") from None
        plugin(this)
    for entry in entry_points(group=PLUGIN_ENTRY_POINTS):
        entry.load()(this)


def unregister(name: str) -> None:
    """Remove a modality (tests; the default ones can be registered again with :func:`register_defaults`)."""
    get(name)
    del _REGISTRY[name]


def names() -> tuple[str, ...]:
    """The registered modality names, in registration order (the defaults first)."""
    load_plugins()
    return tuple(_REGISTRY)


def get(name: str) -> Modality:
    """The registered modality ``name``; the error lists the registered names."""
    load_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModalityError(f"unknown control modality {name!r}; registered: {list(_REGISTRY)} (register more with "
                            "dreamdance_core.modalities.register)") from None


def check_names(modalities: Sequence[str]) -> tuple[str, ...]:
    """``modalities`` as a tuple, each registered and named once."""
    modalities = tuple(modalities)
    if not modalities:
        raise ModalityError(f"give at least one modality; registered: {list(names())}")
    if len(set(modalities)) != len(modalities):
        raise ModalityError(f"each modality may be named once, got {list(modalities)}")
    for name in modalities:
        get(name)
    return modalities


def codecs(modalities: Sequence[str]) -> dict[str, MapCodec]:
    """Name -> dataset codec for ``modalities`` (:class:`dreamdance_core.dataset.ClipDataset`'s ``controls``)."""
    return {name: get(name).codec for name in check_names(modalities)}


def pad_value(name: str) -> float:
    """The pad value of ``name``; a modality the registry does not know (a controller trained elsewhere) pads black."""
    return get(name).pad_value if name in names() else -1.0


def estimator(name: str, spec: str | None, options: Mapping[str, Any] | None = None) -> Estimator:
    """The estimator of modality ``name`` given by ``spec``: a built-in (``json``, ``transformers:<model>``, ...),
    else ``package.module:function``; None: the modality's default estimator."""
    modality = get(name)
    spec = spec or modality.default_estimator
    builtins = ", ".join(modality.estimators) or "none"
    how = f"pass a built-in ({builtins}) or 'package.module:function' (see dreamdance_core.estimators)"
    if spec is None:
        raise ModalityError(f"no {name} estimator given: {how}")
    for key, factory in modality.estimators.items():
        prefix, takes_argument, _ = key.partition(":")
        if spec == key and not takes_argument:
            return factory(None, dict(options or {}))
        if takes_argument and spec.startswith(prefix + ":"):
            return factory(spec[len(prefix) + 1 :], dict(options or {}))
    module_name, _, function = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ModalityError(f"{name} estimator {spec!r} cannot be loaded ({exc}); {how}") from None


# --- control-map lists (what the Stage-2 node chains) ------------------------------------------------------------


@dataclass(frozen=True)
class ControlMap:
    """One modality's maps for the Stage-2 sampler: ``image`` core ``[F, 3, H, W]`` in -1..1 (any size; fitted to
    the video later), ``strength`` between the absent map (0) and the map as given (1)."""

    name: str
    image: "torch.Tensor"
    strength: float = 1.0


def add_control_map(
    previous: Sequence[ControlMap] | None, name: str, image: "torch.Tensor", strength: float = 1.0
) -> tuple[ControlMap, ...]:
    """``previous`` (None: an empty list) with ``name``'s maps appended; a modality may appear once."""
    get(name)
    previous = tuple(previous or ())
    if any(entry.name == name for entry in previous):
        raise ModalityError(f"the control-map list already holds {name!r} maps ({[e.name for e in previous]}); "
                            "give each modality once")
    return (*previous, ControlMap(name, image, float(strength)))


def control_inputs(
    modalities: Sequence[str], given: Sequence[ControlMap], width: int, height: int, fit: str
) -> tuple[dict[str, "torch.Tensor"], dict[str, float]]:
    """The Stage-2 sampler's maps and strengths for a controller of ``modalities`` from the ``given`` control maps.

    Each given map is fitted to ``width`` x ``height`` (``fit``, its pad value); a modality of the controller that is
    not given becomes black (absent) maps, exactly what robust conditioning showed the model in training. A given
    modality the controller was not trained on, two entries of one modality, or maps of different frame counts are
    errors that name the modalities."""
    import torch

    from .media import fit_images
    from .robust_conditioning import ABSENT_VALUE

    modalities = tuple(modalities)
    if not given:
        raise ModalityError(f"connect at least one control map; this video model takes {list(modalities)}")
    names_given = [entry.name for entry in given]
    repeated = sorted({n for n in names_given if names_given.count(n) > 1})
    if repeated:
        raise ModalityError(f"{repeated} maps are given more than once ({names_given}); give each modality once")
    unknown = [n for n in names_given if n not in modalities]
    if unknown:
        raise ModalityError(f"this video model has no {unknown} control input: its controller was trained on "
                            f"{list(modalities)}; leave those maps out or load a model trained with them")
    maps = {e.name: fit_images(e.image, width, height, fit, pad_value(e.name)) for e in given}
    counts = {name: m.shape[0] for name, m in maps.items()}
    if len(set(counts.values())) > 1:
        raise ModalityError(f"the control maps disagree on the number of frames: {counts}; give every map one image "
                            "per frame")
    frames = next(iter(counts.values()))
    strengths = {e.name: e.strength for e in given}
    full = {name: maps.get(name, torch.full((frames, 3, height, width), ABSENT_VALUE)) for name in modalities}
    return full, {name: strengths.get(name, 1.0) for name in modalities}


# --- the paper's modalities -------------------------------------------------------------------------------------


def _json_pose(argument: str | None, options: Mapping[str, Any]) -> Estimator:
    from .estimators import pose_from_json

    return pose_from_json


def _transformers_depth(argument: str | None, options: Mapping[str, Any]) -> Estimator:
    from .estimators import transformers_depth

    return transformers_depth(str(argument))


def _dwpose(argument: str | None, options: Mapping[str, Any]) -> Estimator:
    from .estimators import dwpose, resolve_model

    folder = resolve_model(argument, "dwpose", bool(options.get("allow_download")))
    return dwpose(folder, threshold=float(options.get("pose_threshold", 0.3)))


def _depth_anything(argument: str | None, options: Mapping[str, Any]) -> Estimator:
    from .estimators import depth_anything, resolve_model

    return depth_anything(resolve_model(argument, "depth-anything", bool(options.get("allow_download"))))


def _marigold_normals(argument: str | None, options: Mapping[str, Any]) -> Estimator:
    from .estimators import marigold_normals, resolve_model

    folder = resolve_model(argument, "marigold", bool(options.get("allow_download")))
    return marigold_normals(folder, steps=options.get("marigold_steps"), resolution=options.get("marigold_resolution"),
                            ensemble=int(options.get("marigold_ensemble", 1)))


def _normals_from_depth(argument: str | None, options: Mapping[str, Any]) -> Estimator:
    from .estimators import normals_from_depth

    return normals_from_depth(float(options.get("normal_depth_scale", 20.0)))


def register_defaults() -> None:
    """(Re-)register pose, depth and normal (done when this module is imported)."""
    register(Modality("pose", POSE, synthetic=lambda frames: frames.pose_keypoints(),
                      estimators={"json": _json_pose, "dwpose:<folder>": _dwpose}, default_estimator="json",
                      pad_value=PAD_VALUES["pose"],
                      description="rendered OpenPose skeletons"), replace=True)
    register(Modality("depth", DEPTH, synthetic=lambda frames: depth_to_unit(frames.depth, frames.mask),
                      estimators={"transformers:<model>": _transformers_depth,
                                  "depth-anything:<folder>": _depth_anything}, pad_value=PAD_VALUES["depth"],
                      description="relative depth, white = near"), replace=True)
    register(Modality("normal", NORMAL, synthetic=lambda frames: frames.normal,
                      estimators={"from-depth": _normals_from_depth,
                                  "marigold:<folder>": _marigold_normals},
                      default_estimator="from-depth",
                      requires=("depth",), pad_value=PAD_VALUES["normal"],
                      description="camera-space normals"), replace=True)


register_defaults()
