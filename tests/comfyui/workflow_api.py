"""Convert a UI-format ComfyUI workflow (what drag-and-drop loads) into the API prompt format, in pure Python.

The frontend does this in ``app.graphToPrompt()``; this module does the same from the saved JSON and the server's
``/object_info``, so the HTTP tests can run shipped workflows without a browser. Covered:

* widget values -> input names, in the order ``/object_info`` lists the inputs (``input_order`` when present);
  an INT input with ``control_after_generate`` (or named ``seed`` / ``noise_seed``) is followed by an extra saved
  value ("fixed", "randomize", ...) that belongs to no input;
* inputs fed by links, including widget inputs converted to sockets (their saved widget value is then ignored);
* muted nodes (mode 2) are left out and so are the inputs they feed; bypassed nodes (mode 4) are left out and
  whatever they feed is wired to their input of the same type;
* frontend-only nodes: ``Reroute`` is followed upstream, a ``PrimitiveNode`` hands its value to the widget it
  feeds (already saved there), ``Note`` / ``MarkdownNote`` are dropped.

Not covered: subgraphs and group nodes, and custom widget types created by frontend extensions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MODE_MUTED = 2
MODE_BYPASSED = 4
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
SEED_NAMES = frozenset({"seed", "noise_seed"})
FRONTEND_ONLY = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode"})


class WorkflowConversionError(ValueError):
    """The workflow cannot be turned into an API prompt (unknown node type, missing widget values, bad link)."""


@dataclass(frozen=True)
class _Link:
    origin_id: int
    origin_slot: int


def ui_workflow_to_api(workflow: dict[str, Any], object_info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """UI-format workflow -> API prompt ``{node_id: {"class_type", "inputs", "_meta": {"title"}}}``.

    ``object_info`` is the JSON of ``GET /object_info``. Raises WorkflowConversionError naming the node and the
    problem, e.g. a node type the server does not know (a missing custom node).
    """
    nodes = {node["id"]: node for node in workflow.get("nodes", [])}
    links = dict(_parse_link(link) for link in workflow.get("links", []))
    prompt = {}
    for node in nodes.values():
        if node["type"] in FRONTEND_ONLY or node.get("mode", 0) in (MODE_MUTED, MODE_BYPASSED):
            continue
        info = object_info.get(node["type"])
        if info is None:
            raise WorkflowConversionError(
                f"node {node['id']} has type {node['type']!r}, which the server does not know: "
                "install the custom node pack that provides it (or remove the node)"
            )
        inputs = _widget_inputs(node, info)
        _apply_links(node, inputs, nodes, links)
        title = node.get("title") or info.get("display_name") or node["type"]
        prompt[str(node["id"])] = {"inputs": inputs, "class_type": node["type"], "_meta": {"title": title}}
    return prompt


def _apply_links(node: dict[str, Any], inputs: dict[str, Any], nodes: dict[int, dict], links: dict[int, _Link]) -> None:
    """Set each linked input of ``node`` to ``[origin id, slot]`` (widget inputs converted to sockets included)."""
    for socket in node.get("inputs") or []:
        if socket.get("link") is None:
            continue
        source = _resolve_link(_lookup(links, socket["link"], node["id"]), nodes, links)
        if source is None:
            inputs.pop(socket["name"], None)  # fed by a muted node: the input is left empty
        elif nodes[source.origin_id]["type"] != "PrimitiveNode":  # a primitive's value is the saved widget value
            inputs[socket["name"]] = [str(source.origin_id), source.origin_slot]


def _lookup(links: dict[int, _Link], link_id: int, node_id: int) -> _Link:
    if link_id not in links:
        raise WorkflowConversionError(f"node {node_id} uses link {link_id}, which is not in the workflow")
    return links[link_id]


def _parse_link(link: list | dict) -> tuple[int, _Link]:
    """(link id, origin) from a saved link: ``[id, origin_id, origin_slot, target_id, target_slot, type]`` (schema
    0.4) or ``{"id", "origin_id", "origin_slot", ...}`` (schema 1)."""
    if isinstance(link, dict):
        return link["id"], _Link(link["origin_id"], link["origin_slot"])
    return link[0], _Link(link[1], link[2])


def _ordered_inputs(info: dict[str, Any]) -> list[tuple[str, list]]:
    """(name, spec) of the required then optional inputs, in the server's declared order."""
    declared = info.get("input", {})
    sections = ("required", "optional")
    order = info.get("input_order") or {section: list(declared.get(section, {})) for section in sections}
    return [(name, declared[section][name]) for section in sections for name in order.get(section, [])]


def _is_widget(spec: list) -> bool:
    """Whether the frontend draws a widget (which saves a value) for an input spec ``[type, options]``."""
    kind, options = spec[0], (spec[1] if len(spec) > 1 else {}) or {}
    return (isinstance(kind, list) or kind in WIDGET_TYPES) and not options.get("forceInput", False)


def _has_control_value(name: str, spec: list) -> bool:
    """INT widgets with a 'control after generate' companion save one more value right after their own."""
    options = (spec[1] if len(spec) > 1 else {}) or {}
    if "control_after_generate" in options:
        return bool(options["control_after_generate"])
    return spec[0] == "INT" and name in SEED_NAMES


def _widget_inputs(node: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """Map the node's saved ``widgets_values`` to input names.

    A workflow saved before a node gained inputs (appended at the end) saves fewer values: as the frontend does when it
    configures such a node, the missing trailing widgets keep their declared ``default``. A missing value with no
    default is an error (the workflow was saved by another version of the node).
    """
    saved = node.get("widgets_values") or []
    widget_specs = [(name, spec) for name, spec in _ordered_inputs(info) if _is_widget(spec)]
    if isinstance(saved, dict):  # some extensions save widgets by name
        return {name: saved[name] for name, _ in widget_specs if name in saved}
    values, position = {}, 0
    for name, spec in widget_specs:
        options = (spec[1] if len(spec) > 1 else {}) or {}
        if position >= len(saved) and "default" in options:
            values[name] = options["default"]
            continue
        if position >= len(saved):
            raise WorkflowConversionError(
                f"node {node['id']} ({node['type']}) saves {len(saved)} widget values but its inputs need more "
                f"(no value for {name!r}): the workflow was saved by a different version of the node"
            )
        values[name] = saved[position]
        position += 2 if _has_control_value(name, spec) else 1
    return values


def _resolve_link(link: _Link, nodes: dict[int, dict], links: dict[int, _Link]) -> _Link | None:
    """Follow a link upstream through reroutes and bypassed nodes; None when a muted node (or nothing) feeds it."""
    origin = nodes.get(link.origin_id)
    if origin is None:
        raise WorkflowConversionError(f"a link starts at node {link.origin_id}, which is not in the workflow")
    if origin.get("mode", 0) == MODE_MUTED:
        return None
    if origin["type"] == "Reroute" or origin.get("mode", 0) == MODE_BYPASSED:
        upstream = _bypass_input(origin, link.origin_slot)
        return None if upstream is None else _resolve_link(_lookup(links, upstream, origin["id"]), nodes, links)
    return link


def _bypass_input(node: dict[str, Any], output_slot: int) -> int | None:
    """The link id a bypassed node (or a reroute) passes on to ``output_slot``, as the frontend picks it.

    The input of the output's type is used, the one at the same slot first; None when it is not connected.
    """
    inputs = node.get("inputs") or []
    if node["type"] == "Reroute":
        return inputs[0].get("link") if inputs else None
    wanted = node["outputs"][output_slot]["type"]
    candidates = ([inputs[output_slot]] if output_slot < len(inputs) else []) + inputs
    match = next((socket for socket in candidates if socket["type"] == wanted), None)
    return None if match is None else match.get("link")
