"""The pure-Python UI -> API workflow converter, on hand-made graphs (no server; the browser cross-check is in
test_frontend.py)."""

from __future__ import annotations

import pytest

from tests.comfyui.workflow_api import WorkflowConversionError, ui_workflow_to_api

IMAGE_IN = {"required": {"image": ["IMAGE", {}]}}
OBJECT_INFO = {
    "Source": {"display_name": "Source", "input": {"required": {
        "width": ["INT", {"default": 8}], "seed": ["INT", {}], "mode": [["a", "b"], {}],
        "prompt": ["STRING", {"forceInput": True}], "strength": ["FLOAT", {}],
    }}, "output": ["IMAGE"]},
    "Sampler": {"display_name": "Sampler", "input": {"required": {
        "image": ["IMAGE", {}], "steps": ["INT", {"control_after_generate": True}], "cfg": ["FLOAT", {}],
    }, "optional": {"flag": ["BOOLEAN", {}]}}, "input_order": {"required": ["image", "steps", "cfg"],
                                                               "optional": ["flag"]}},
    "Invert": {"display_name": "Invert Image", "input": IMAGE_IN},
    "Save": {"display_name": "Save", "input": {"required": {"images": ["IMAGE", {}], "prefix": ["STRING", {}]}}},
}


def node(node_id: int, type_: str, widgets=None, inputs=(), outputs=(), mode: int = 0) -> dict:
    return {"id": node_id, "type": type_, "mode": mode, "widgets_values": widgets,
            "inputs": [{"name": name, "type": kind, "link": link} for name, kind, link in inputs],
            "outputs": [{"name": kind, "type": kind, "links": []} for kind in outputs]}


def chain(middle_mode: int) -> dict:
    """Source -> Invert (mode) -> Save."""
    return {"nodes": [
        node(1, "Source", [16, 7, "fixed", "b", 0.5], inputs=[("prompt", "STRING", None)], outputs=["IMAGE"]),
        node(2, "Invert", inputs=[("image", "IMAGE", 1)], outputs=["IMAGE"], mode=middle_mode),
        node(3, "Save", ["out"], inputs=[("images", "IMAGE", 2)]),
    ], "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]]}


def test_widget_values_skip_the_seed_control_value_and_force_inputs():
    prompt = ui_workflow_to_api(chain(0), OBJECT_INFO)
    assert prompt["1"] == {"class_type": "Source", "_meta": {"title": "Source"},
                           "inputs": {"width": 16, "seed": 7, "mode": "b", "strength": 0.5}}
    assert prompt["2"]["inputs"] == {"image": ["1", 0]}
    assert prompt["3"]["inputs"] == {"images": ["2", 0], "prefix": "out"}


def test_control_after_generate_option_and_optional_inputs_follow_input_order():
    workflow = {"nodes": [node(1, "Sampler", [20, "increment", 3.5, True], inputs=[("image", "IMAGE", None)])],
                "links": []}
    assert ui_workflow_to_api(workflow, OBJECT_INFO)["1"]["inputs"] == {"steps": 20, "cfg": 3.5, "flag": True}


def test_bypassed_node_passes_its_input_through():
    prompt = ui_workflow_to_api(chain(4), OBJECT_INFO)
    assert "2" not in prompt
    assert prompt["3"]["inputs"]["images"] == ["1", 0]


def test_muted_node_is_left_out_with_the_inputs_it_feeds():
    prompt = ui_workflow_to_api(chain(2), OBJECT_INFO)
    assert "2" not in prompt
    assert prompt["3"]["inputs"] == {"prefix": "out"}


def test_widget_converted_to_a_socket_takes_the_link_and_reroutes_and_primitives_resolve():
    workflow = chain(0)
    workflow["nodes"] += [
        node(4, "Source", [1, 2, "fixed", "a", 1.0], outputs=["IMAGE"]),
        node(5, "Reroute", inputs=[("", "*", 3)], outputs=["IMAGE"]),
        node(6, "PrimitiveNode", [0.25], outputs=["FLOAT"]),
        node(7, "Note", ["a note"]),
    ]
    workflow["nodes"][1]["inputs"][0]["link"] = 4                     # Invert <- Reroute <- Source 4
    workflow["nodes"][0]["inputs"].append({"name": "strength", "type": "FLOAT", "link": 5, "widget": {}})
    workflow["links"] += [[3, 4, 0, 5, 0, "IMAGE"], [4, 5, 0, 2, 0, "IMAGE"], [5, 6, 0, 1, 4, "FLOAT"]]
    prompt = ui_workflow_to_api(workflow, OBJECT_INFO)
    assert set(prompt) == {"1", "2", "3", "4"}
    assert prompt["2"]["inputs"] == {"image": ["4", 0]}
    assert prompt["1"]["inputs"]["strength"] == 0.5  # a primitive's value is already the saved widget value


def test_unknown_node_type_names_the_node_and_the_fix():
    workflow = chain(0)
    workflow["nodes"][1]["type"] = "DreamDanceNotInstalled"
    with pytest.raises(WorkflowConversionError, match=r"node 2 .*'DreamDanceNotInstalled'.*install"):
        ui_workflow_to_api(workflow, OBJECT_INFO)


def test_too_few_widget_values_is_an_error():
    workflow = chain(0)
    workflow["nodes"][0]["widgets_values"] = [16, 7]
    with pytest.raises(WorkflowConversionError, match=r"node 1 \(Source\).*'mode'"):
        ui_workflow_to_api(workflow, OBJECT_INFO)


def test_inputs_appended_after_a_workflow_was_saved_take_their_defaults():
    """What the frontend does with an older workflow: the saved values fill the widgets in order, a widget added later
    keeps its default."""
    info = {**OBJECT_INFO, "Source": {**OBJECT_INFO["Source"], "input": {**OBJECT_INFO["Source"]["input"], "optional": {
        **OBJECT_INFO["Source"]["input"].get("optional", {}), "fit": [["crop", "pad"], {"default": "crop"}]}}}}
    inputs = ui_workflow_to_api(chain(0), info)["1"]["inputs"]
    assert inputs == {"width": 16, "seed": 7, "mode": "b", "strength": 0.5, "fit": "crop"}


def test_links_saved_as_objects_are_read_too():
    workflow = chain(0)
    keys = ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")
    workflow["links"] = [dict(zip(keys, link, strict=True)) for link in workflow["links"]]
    assert ui_workflow_to_api(workflow, OBJECT_INFO) == ui_workflow_to_api(chain(0), OBJECT_INFO)


def test_a_dangling_link_is_an_error():
    workflow = chain(0)
    workflow["links"].pop()
    with pytest.raises(WorkflowConversionError, match=r"node 3 uses link 2, which is not in"):
        ui_workflow_to_api(workflow, OBJECT_INFO)
