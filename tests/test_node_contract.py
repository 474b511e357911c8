"""Every node of the pack, imported the way ComfyUI imports it: stable ids, categories, tooltips, outputs."""

from __future__ import annotations

import sys

from tests.node_stubs import comfy_stubs, import_pack  # noqa: F401  (comfy_stubs: a fixture)

EXPECTED = {
    "DreamDanceGeometryModelLoader", "DreamDanceWindowOptions", "DreamDancePoseToGeometry", "DreamDanceGeometryPreview",
    "DreamDanceVideoModelLoader", "DreamDanceAnimate", "DreamDanceControlMap",
}


def test_node_contract(comfy_stubs):
    pack = import_pack()
    nodes = pack.NODE_CLASS_MAPPINGS
    assert EXPECTED <= set(nodes), f"missing node ids: {EXPECTED - set(nodes)}"  # saved workflows use these ids
    assert pack.WEB_DIRECTORY == "./web"
    for node_id, node in nodes.items():
        assert node_id.startswith("DreamDance"), node_id
        assert node.CATEGORY.startswith("DreamDance/"), node_id
        assert callable(getattr(node, node.FUNCTION)), node_id
        assert len(getattr(node, "RETURN_NAMES", node.RETURN_TYPES)) == len(node.RETURN_TYPES), node_id
        assert node_id in pack.NODE_DISPLAY_NAME_MAPPINGS, node_id
        assert isinstance(getattr(node, "DESCRIPTION", None), str) and node.DESCRIPTION, f"{node_id} has no description"
        for section, inputs in node.INPUT_TYPES().items():
            assert section in ("required", "optional", "hidden"), (node_id, section)
            for name, spec in inputs.items():
                if section != "hidden":
                    assert len(spec) == 2 and spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"


def test_importing_the_pack_loads_no_model_libraries(comfy_stubs):
    heavy = ("diffusers", "transformers", "accelerate")
    before = {name for name in sys.modules if name.split(".")[0] in heavy}
    import_pack("dreamdance_pack_import_check")
    after = {name for name in sys.modules if name.split(".")[0] in heavy}
    assert after == before, f"importing the pack imported {sorted(after - before)[:5]}"
