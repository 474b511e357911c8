"""Queue-time checks for the nodes' ``VALIDATE_INPUTS`` (ComfyUI's V1 API), so bad widget values are refused when
the prompt is queued, before any model work.

How ComfyUI 0.3.75 calls it (``execution.validate_inputs``): with the inputs named in the method's signature;
widget values arrive as values, linked inputs arrive as ``None`` (their values do not exist yet). For every input
named there ComfyUI *skips its own min/max and combo checks*, so :func:`widget_problem` redoes them from
``INPUT_TYPES`` and adds what ComfyUI lets through: NaN (``float("nan") < min`` is False). A returned string is the
refusal: the prompt is answered with HTTP 400, ``custom_validation_failed`` and the string in ``details``.
The execute methods check again in the core (a prompt sent to another door, or values known only at run time).
"""

from __future__ import annotations


def _spec(node_cls, name: str) -> tuple:
    inputs = node_cls.INPUT_TYPES()
    spec = {**inputs.get("required", {}), **inputs.get("optional", {})}[name]
    return spec[0], (spec[1] if len(spec) > 1 else {})


def widget_problem(node_cls, name: str, value) -> str | None:
    """The sentence that refuses one widget value (its range and finiteness per ``INPUT_TYPES``), or None."""
    from ..dreamdance_core.validation import InputError, check_choice, check_int, check_number

    if value is None:  # a linked input: checked when the node runs
        return None
    kind, options = _spec(node_cls, name)
    try:
        if kind == "INT":
            check_int(name, value, options.get("min"), options.get("max"))
        elif kind == "FLOAT":
            check_number(name, value, options.get("min"), options.get("max"))
        elif isinstance(kind, (list, tuple)):
            check_choice(name, value, kind)
    except InputError as error:
        return str(error)
    return None


def queue_check(node_cls, values: dict, *checks) -> bool | str:
    """``VALIDATE_INPUTS``' answer: True, or the first problem among the widget values and then ``checks``.

    ``checks`` are callables that raise a ``ValueError`` (the core's errors: ``PoseError``, validation errors) with
    the sentence to show; they run only when every widget value passed.
    """
    for name, value in values.items():
        problem = widget_problem(node_cls, name, value)
        if problem:
            return problem
    for check in checks:
        try:
            check()
        except ValueError as error:
            return str(error)
    return True


POSE_KEYPOINT_BYTES = 20_000  # a POSE_KEYPOINT person-frame as Python lists (body, face, hands): measured ~19.5 KB
POSE_KEYPOINT_LIMIT = 2**30  # one pose in ComfyUI's output cache; 100000 frames (~1.9 GiB) took >10 s to build


def check_pose_budget(what: str, frames: int, people: int = 1) -> None:
    """Refuse a POSE_KEYPOINT of ``frames`` x ``people`` larger than :data:`POSE_KEYPOINT_LIMIT` (or the core's memory
    limit, when lower): ComfyUI keeps every node's output in memory, and each pose node rebuilds the lists."""
    from ..dreamdance_core.validation import InputError, format_bytes, memory_limit

    needed, limit = frames * max(1, people) * POSE_KEYPOINT_BYTES, min(POSE_KEYPOINT_LIMIT, memory_limit())
    if needed > limit:
        most = limit // (max(1, people) * POSE_KEYPOINT_BYTES)
        raise InputError(
            f"{what} of {frames} frames would hold about {format_bytes(needed)} of keypoint lists in ComfyUI's memory "
            f"(limit {format_bytes(limit)} for one pose); lower num_frames to at most {most}, or make it in parts"
        )
