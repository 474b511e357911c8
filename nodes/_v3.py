"""The pack's nodes on ComfyUI's V3 node schema (``comfy_api.latest``), built from the V1 declarations in this folder.

Each node is declared once, as a V1 class (``INPUT_TYPES``, ``RETURN_TYPES``, ``FUNCTION``...): the node unit tests
call those without ComfyUI. Where ComfyUI offers the V3 API, :func:`v3_nodes` builds one ``io.ComfyNode`` per V1
class with the same node id, display name, category, description and output node flag, the same inputs (names,
order, required/optional, types, defaults, ranges, tooltips; custom socket types through ``io.Custom``) and outputs;
``define_schema`` reads ``INPUT_TYPES`` on every call (file lists stay fresh), ``execute`` runs the V1 function,
``validate_inputs`` runs ``VALIDATE_INPUTS`` and more (below), ``fingerprint_inputs`` runs ``IS_CHANGED``.

What ComfyUI 0.3.75 does differently with V3 nodes (``execution.py``, ``comfy_api/latest/_io.py``), and what is done
about it here:

* A V3 combo is typed ``"COMBO"`` with its list in ``options``; ``execution.validate_inputs`` checks a value against
  the list only when the type *is* a list, so it never checks a V3 combo. ``validate_inputs`` checks every combo.
* ``validate_inputs`` receives, like V1, only the inputs its signature names, and ComfyUI skips its own min/max checks
  for those. The signature (``__signature__``) names the V1 ``VALIDATE_INPUTS`` arguments, every combo input and the
  sockets a connection rule reads, never ``**kwargs`` (which would switch ComfyUI's range checks off for every input).
* A linked input reaches ``validate_inputs`` as None, an optional socket left unconnected not at all: the
  :data:`CONNECTION_RULES` refuse at queue time a graph that would fail at run time for a missing connection
  (no pose source, two pose sources, no control map).
* ``NodeOutput.from_dict`` passes ``args=`` to ``NodeOutput`` and raises: a V1 ``{"ui", "result"}`` answer is
  turned into ``io.NodeOutput(*result, ui=ui)`` here.
* ``Schema.finalize`` gives an output node the hidden inputs ``prompt`` and ``extra_pnginfo`` (unused).
* Not available in 0.3.75: ``DynamicCombo`` (inputs shown or hidden by another input's value; ``ComboDynamic`` is an
  empty stub), so the inputs that matter only for real weights stay visible when a demo model is picked.

ComfyUI (``nodes.load_custom_node``) uses ``comfy_entrypoint`` only when the pack exports no ``NODE_CLASS_MAPPINGS``:
the pack's ``__init__`` exports one or the other (:data:`NODE_API`). ``DREAMDANCE_NODE_API=v1`` forces the V1 classes.
"""

from __future__ import annotations

import inspect
import os

try:  # ComfyUI with the V3 node API (comfy_api.latest needs ComfyUI's own modules: absent in the unit tests)
    from comfy_api.latest import ComfyExtension, io
except ImportError:
    ComfyExtension = io = None

NODE_API = "v3" if io is not None and os.environ.get("DREAMDANCE_NODE_API", "").lower() != "v1" else "v1"

LONG_LIST = 20  # a refused combo value lists the choices only up to this many (ComfyUI's own limit)


def _connected(values: dict, name: str) -> bool:
    """Whether socket ``name`` is connected: ComfyUI passes a linked input (as None), leaves an unconnected one out."""
    return name in values


def _pose_source(values: dict) -> str | None:
    given = [name for name in ("pose_keypoint", "pose_images") if _connected(values, name)]
    if len(given) != 1:
        return ("connect exactly one pose input: pose_keypoint (skeleton keypoints) or pose_images (rendered); "
                + ("both are connected" if given else "neither is connected"))
    return None


def _control_source(values: dict) -> str | None:
    if not any(_connected(values, name) for name in ("pose_images", "depth", "normal", "control_maps")):
        return ("connect at least one control map: pose_images, depth, normal or control_maps (from DreamDance "
                "Control Map nodes)")
    return None


def _editor_source(values: dict) -> str | None:
    text = values.get("pose_json")
    if isinstance(text, str) and text.strip() in ("", "[]") and not _connected(values, "pose"):
        return "the editor is empty (pose_json) and no pose is connected: edit a pose or connect one to 'pose'"
    return None


# node id -> (the sockets and widgets the rule reads, the rule: a refusal sentence or None)
CONNECTION_RULES = {
    "DreamDancePoseToGeometry": (("pose_keypoint", "pose_images"), _pose_source),
    "DreamDanceAnimate": (("pose_images", "depth", "normal", "control_maps"), _control_source),
    "DreamDancePoseEditor": (("pose_json", "pose"), _editor_source),
}

# V1 option names -> keyword of the V3 input class, per type; other options travel unchanged in ``extra_dict``
_COMMON = {"tooltip": "tooltip", "lazy": "lazy", "display_name": "display_name"}
_WIDGET = {**_COMMON, "default": "default", "socketless": "socketless", "forceInput": "force_input"}
_OPTIONS = {
    "INT": {**_WIDGET, "min": "min", "max": "max", "step": "step", "control_after_generate": "control_after_generate",
            "display": "display_mode"},
    "FLOAT": {**_WIDGET, "min": "min", "max": "max", "step": "step", "round": "round", "display": "display_mode"},
    "STRING": {**_WIDGET, "multiline": "multiline", "placeholder": "placeholder", "dynamicPrompts": "dynamic_prompts"},
    "BOOLEAN": {**_WIDGET, "label_on": "label_on", "label_off": "label_off"},
    "COMBO": {**_COMMON, "default": "default", "socketless": "socketless",
              "control_after_generate": "control_after_generate"},
}
_UPLOADS = ("image_upload", "video_upload", "audio_upload", "model_upload", "file_upload")  # io.UploadType values
_V1_ONLY = ("check_lazy_status",)  # V1 features this builder does not translate: such a node must be written in V3
_custom_types: dict[str, type] = {}


def _socket_type(io_type: str):
    """The V3 type class of a socket type: ComfyUI's own where it has one, ``io.Custom`` (one class per name) else."""
    known = {"IMAGE": io.Image, "MASK": io.Mask, "LATENT": io.Latent, "AUDIO": io.Audio, "VIDEO": io.Video}
    if io_type in known:
        return known[io_type]
    if io_type not in _custom_types:
        _custom_types[io_type] = io.Custom(io_type)
    return _custom_types[io_type]


def _input(name: str, spec, optional: bool):
    """One V1 input spec ``(type_or_list, {options})`` -> the V3 input with the same name, type and options."""
    kind, options = spec[0], dict(spec[1]) if len(spec) > 1 and spec[1] else {}
    key = "COMBO" if isinstance(kind, (list, tuple)) else kind
    names = _OPTIONS.get(key, _COMMON)
    kwargs = {names[k]: options.pop(k) for k in list(options) if k in names}
    if "display_mode" in kwargs:
        kwargs["display_mode"] = io.NumberDisplay(kwargs["display_mode"]) if key == "INT" else kwargs["display_mode"]
    if key == "COMBO":
        for upload in _UPLOADS:
            if options.pop(upload, False):
                kwargs["upload"] = io.UploadType(upload)
        if "image_folder" in options:
            kwargs["image_folder"] = io.FolderType(options.pop("image_folder"))
        made = io.Combo.Input(name, options=list(kind), optional=optional, **kwargs)
    elif key == "STRING":
        made = io.String.Input(name, optional=optional, **{"multiline": None, **kwargs})  # as V1: absent unless set
    elif key in ("INT", "FLOAT", "BOOLEAN"):
        made = {"INT": io.Int, "FLOAT": io.Float, "BOOLEAN": io.Boolean}[key].Input(name, optional=optional, **kwargs)
    else:  # a socket
        made = _socket_type(kind).Input(name, optional=optional, **kwargs)
    made.extra_dict = options  # V1 options without a V3 keyword, passed on as they are
    return made


def _outputs(v1) -> list:
    types, names = v1.RETURN_TYPES, getattr(v1, "RETURN_NAMES", None)
    is_list = getattr(v1, "OUTPUT_IS_LIST", None) or (False,) * len(types)
    tooltips = getattr(v1, "OUTPUT_TOOLTIPS", None) or (None,) * len(types)
    return [_socket_type(kind).Output(display_name=names[i] if names else None, tooltip=tooltips[i],
                                      is_output_list=is_list[i])
            for i, kind in enumerate(types)]


def schema(node_id: str, v1, display_name: str | None):
    """The V3 ``io.Schema`` of a V1 node class."""
    declared = v1.INPUT_TYPES()
    hidden = [io.Hidden(value) for value in _hidden(declared).values()]
    inputs = [_input(name, spec, section == "optional")
              for section in ("required", "optional") for name, spec in declared.get(section, {}).items()]
    return io.Schema(
        node_id=node_id, display_name=display_name or node_id, category=getattr(v1, "CATEGORY", "sd"),  # V1's defaults
        description=getattr(v1, "DESCRIPTION", ""),
        inputs=inputs, outputs=_outputs(v1), hidden=hidden or None,
        is_output_node=bool(getattr(v1, "OUTPUT_NODE", False)), is_input_list=bool(getattr(v1, "INPUT_IS_LIST", False)),
        is_deprecated=bool(getattr(v1, "DEPRECATED", False)),
        is_experimental=bool(getattr(v1, "EXPERIMENTAL", False)),
        not_idempotent=bool(getattr(v1, "NOT_IDEMPOTENT", False)),
    )


def _hidden(declared: dict) -> dict[str, str]:
    """The V1 hidden inputs of ``INPUT_TYPES()``, ``{argument name: "UNIQUE_ID" | "PROMPT" | ...}``."""
    return {name: spec[0] if isinstance(spec, (list, tuple)) else spec
            for name, spec in declared.get("hidden", {}).items()}


def node_output(result):
    """A V1 answer (a tuple, or ``{"ui": ..., "result": ...}``) as ``io.NodeOutput``."""
    if isinstance(result, dict):
        return io.NodeOutput(*(result.get("result") or ()), ui=result.get("ui"), expand=result.get("expand"))
    return io.NodeOutput(*result)


def combo_problem(v1, name: str, value) -> str | None:
    """The sentence refusing a combo value not among the V1 input's current choices, or None."""
    from ._validate import widget_problem

    if value is None:  # linked
        return None
    declared = v1.INPUT_TYPES()
    choices = {**declared.get("required", {}), **declared.get("optional", {})}[name][0]
    if len(choices) > LONG_LIST and value not in choices:
        return f"{name} {value!r:.80} is not one of the {len(choices)} choices; pick one of them"
    return widget_problem(v1, name, value)


def _combo_names(v1) -> list[str]:
    declared = v1.INPUT_TYPES()
    return [name for section in ("required", "optional") for name, spec in declared.get(section, {}).items()
            if isinstance(spec[0], (list, tuple))]


def _validate_arguments(node_id: str, v1) -> list[str]:
    """The inputs ``validate_inputs`` names: those of V1 ``VALIDATE_INPUTS``, the combos, the connection rule's."""
    named = []
    if hasattr(v1, "VALIDATE_INPUTS"):
        spec = inspect.getfullargspec(v1.VALIDATE_INPUTS)
        if spec.varkw is not None:
            raise TypeError(f"{node_id}.VALIDATE_INPUTS takes **kwargs: name the inputs it checks")
        named += spec.args[1:]
    named += _combo_names(v1) + list(CONNECTION_RULES.get(node_id, ((), None))[0])
    return list(dict.fromkeys(named))


def make_node(node_id: str, v1, display_name: str | None = None) -> type:
    """The ``io.ComfyNode`` class standing for V1 class ``v1`` under ``node_id``."""
    for name in _V1_ONLY:
        if hasattr(v1, name):
            raise TypeError(f"{node_id} uses V1 {name}, which nodes/_v3.py does not translate")
    v1_checks = inspect.getfullargspec(v1.VALIDATE_INPUTS).args[1:] if hasattr(v1, "VALIDATE_INPUTS") else []
    combos = _combo_names(v1)
    rule = CONNECTION_RULES.get(node_id, ((), None))[1]
    hidden = _hidden(v1.INPUT_TYPES())

    def define_schema(cls):
        return schema(node_id, v1, display_name)

    def execute(cls, **inputs):
        for name, value in hidden.items():
            inputs[name] = getattr(cls.hidden, io.Hidden(value).name)
        node = v1()
        return node_output(getattr(node, v1.FUNCTION)(**inputs))

    def validate_inputs(cls, **values):
        if v1_checks:
            answer = v1.VALIDATE_INPUTS(**{name: values[name] for name in v1_checks if name in values})
            if answer is not True:
                return answer
        for name in combos:
            problem = combo_problem(v1, name, values[name]) if name in values else None
            if problem:
                return problem
        return (rule(values) if rule else None) or True

    arguments = _validate_arguments(node_id, v1)
    parameter = inspect.Parameter.POSITIONAL_OR_KEYWORD
    validate_inputs.__signature__ = inspect.Signature(  # what execution.validate_inputs reads (getfullargspec)
        [inspect.Parameter("cls", parameter)] + [inspect.Parameter(name, parameter, default=None) for name in arguments]
    )
    body = {"define_schema": classmethod(define_schema), "execute": classmethod(execute), "V1_CLASS": v1,
            "__doc__": v1.__doc__, "__module__": __name__}
    if arguments:
        body["validate_inputs"] = classmethod(validate_inputs)
    if hasattr(v1, "IS_CHANGED"):
        body["fingerprint_inputs"] = classmethod(lambda cls, **inputs: v1.IS_CHANGED(**inputs))
    return type(v1.__name__, (io.ComfyNode,), body)


def v3_nodes(mappings: dict, display_names: dict) -> list[type]:
    """One V3 node class per V1 mapping entry, in the mappings' order."""
    return [make_node(node_id, v1, display_names.get(node_id)) for node_id, v1 in mappings.items()]


def comfy_entrypoint():
    """ComfyUI's V3 entry point: the extension listing this pack's nodes."""
    from . import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    nodes = v3_nodes(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS)

    class DreamDanceExtension(ComfyExtension):
        async def get_node_list(self) -> list[type]:
            return nodes

    return DreamDanceExtension()
