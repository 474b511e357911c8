"""The pack inside a real ComfyUI: it imports cleanly from a renamed folder, cheaply, and its nodes are well-formed."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from scripts.comfyui_harness import PACK_FOLDER_NAME, REPO_ROOT, ComfyInstall, ComfyServer

# Importing the pack must not load these: models are built inside the nodes' execute functions.
HEAVY_MODULES = ("diffusers", "transformers", "accelerate")
# Loads the pack the way ComfyUI 0.3.75's nodes.load_custom_node does (module name = folder path, "." -> "_x_"),
# in ComfyUI's own interpreter with its V3 API imported (as the server has it), and reports its node ids, which node
# API it used (V1 NODE_CLASS_MAPPINGS, or V3 comfy_entrypoint: then every node's schema is built, as the server does
# when it loads the pack) and which heavy modules that pulled in.
IMPORT_PROBE = """
import asyncio, importlib.util, json, os, sys
sys.argv = [sys.argv[0], "--cpu"]
sys.path.insert(0, os.getcwd())
import comfy.options; comfy.options.enable_args_parsing()
try:
    import comfy_api.latest
except ImportError:  # a ComfyUI before the V3 node API
    pass
pack = os.environ["DREAMDANCE_PACK_DIR"]
spec = importlib.util.spec_from_file_location(pack.replace(".", "_x_"), os.path.join(pack, "__init__.py"))
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
if getattr(module, "NODE_CLASS_MAPPINGS", None) is not None:
    api, nodes = "v1", sorted(module.NODE_CLASS_MAPPINGS)
elif hasattr(module, "comfy_entrypoint"):
    listed = asyncio.run(module.comfy_entrypoint().get_node_list())
    api, nodes = "v3", sorted(node.GET_SCHEMA().node_id for node in listed)
else:
    api, nodes = None, []
heavy = [name for name in json.loads(os.environ["DREAMDANCE_HEAVY"]) if name in sys.modules]
print(json.dumps({"nodes": nodes, "api": api, "heavy": heavy, "torch": "torch" in sys.modules}))
"""


def probe_pack_import(install: ComfyInstall, pack_dir: Path) -> dict:
    """Import the pack at ``pack_dir`` in a fresh ComfyUI interpreter: its node ids and the heavy modules it loaded."""
    done = subprocess.run(
        [str(install.python), "-c", IMPORT_PROBE], cwd=install.comfy_dir, capture_output=True, text=True, check=False,
        env=dict(os.environ, DREAMDANCE_PACK_DIR=str(pack_dir), DREAMDANCE_HEAVY=json.dumps(HEAVY_MODULES)),
    )
    assert done.returncode == 0, f"importing the pack at {pack_dir} failed:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def import_report(comfyui_install: ComfyInstall, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What importing this pack (through a renamed folder link) gives."""
    link = tmp_path_factory.mktemp("probe") / PACK_FOLDER_NAME
    link.symlink_to(REPO_ROOT, target_is_directory=True)
    report = probe_pack_import(comfyui_install, link)
    print(f"pack import: {len(report['nodes'])} nodes, torch imported: {report['torch']}")
    return report


def node_problems(object_info: dict) -> list[str]:
    """Every DreamDance node must sit under a 'DreamDance/' category and explain each input in a tooltip."""
    problems = []
    for node_id, info in dreamdance_nodes(object_info).items():
        if not info["category"].startswith("DreamDance/"):
            problems.append(f"{node_id}: category {info['category']!r} does not start with 'DreamDance/'")
        for section in ("required", "optional"):
            for name, spec in info["input"].get(section, {}).items():
                options = (spec[1] if len(spec) > 1 else None) or {}
                if not options.get("tooltip"):
                    problems.append(f"{node_id}: input {name!r} has no tooltip")
    return problems


def dreamdance_nodes(object_info: dict) -> dict[str, dict]:
    return {node_id: info for node_id, info in object_info.items() if node_id.startswith("DreamDance")}


def test_pack_loads_in_the_server_from_a_renamed_folder(comfy_server: ComfyServer):
    assert comfy_server.pack_import_failures() == []
    link = comfy_server.dirs.packs / PACK_FOLDER_NAME
    assert f"seconds: {link}" in comfy_server.log_text(), "ComfyUI did not list the pack among the loaded ones"


def test_importing_the_pack_loads_no_model_library(import_report: dict):
    assert import_report["heavy"] == [], f"importing the pack imported {import_report['heavy']}: import them lazily"


def test_a_comfyui_with_the_v3_api_gets_the_v3_nodes(import_report: dict, comfyui_install: ComfyInstall):
    """ComfyUI 0.3.75 has the V3 node API: the pack exports comfy_entrypoint and no NODE_CLASS_MAPPINGS (which
    ComfyUI would take first); tests/comfyui/test_v3_schema.py compares them with the V1 ones. An older ComfyUI
    (DREAMDANCE_COMFYUI_DIR) gets the V1 mappings."""
    has_v3 = (comfyui_install.comfy_dir / "comfy_api" / "latest" / "__init__.py").is_file()
    assert import_report["api"] == ("v3" if has_v3 else "v1")


def test_server_nodes_are_exactly_the_packs_mappings(comfy_server: ComfyServer, import_report: dict):
    served = dreamdance_nodes(comfy_server.get("/object_info"))
    assert set(served) == set(import_report["nodes"])
    wrong_module = {node_id: info["python_module"] for node_id, info in served.items()
                    if info["python_module"] != f"custom_nodes.{PACK_FOLDER_NAME}"}
    assert wrong_module == {}


def test_every_node_has_a_category_and_tooltips_on_every_input(comfy_server: ComfyServer):
    assert node_problems(comfy_server.get("/object_info")) == []


def test_the_node_checks_catch_a_bad_node_and_a_heavy_import(comfyui_install: ComfyInstall, tmp_path: Path):
    """Negative controls: the checks above fail on a pack that breaks the rules."""
    bad_node = {"category": "image", "input": {"required": {"a": ["INT", {"tooltip": "ok"}], "b": ["IMAGE"]},
                                               "optional": {"c": ["FLOAT", {}]}}}
    assert node_problems({"DreamDanceBad": bad_node, "SaveImage": bad_node}) == [
        "DreamDanceBad: category 'image' does not start with 'DreamDance/'",
        "DreamDanceBad: input 'b' has no tooltip",
        "DreamDanceBad: input 'c' has no tooltip",
    ]
    heavy_pack = tmp_path / "heavy_pack"
    heavy_pack.mkdir()
    (heavy_pack / "__init__.py").write_text("import transformers\nNODE_CLASS_MAPPINGS = {'DreamDanceX': object}\n")
    assert probe_pack_import(comfyui_install, heavy_pack)["heavy"] == ["transformers"]
    heavy_v3_pack = tmp_path / "heavy_v3_pack"  # the same through a V3 node whose schema imports the library
    heavy_v3_pack.mkdir()
    (heavy_v3_pack / "__init__.py").write_text(HEAVY_V3_PACK)
    report = probe_pack_import(comfyui_install, heavy_v3_pack)
    assert (report["api"], report["nodes"], report["heavy"]) == ("v3", ["DreamDanceHeavy"], ["transformers"])


HEAVY_V3_PACK = """
from comfy_api.latest import ComfyExtension, io


class Heavy(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        import transformers  # noqa: F401
        return io.Schema(node_id="DreamDanceHeavy", category="DreamDance/test", inputs=[], outputs=[])

    @classmethod
    def execute(cls):
        return io.NodeOutput()


class Extension(ComfyExtension):
    async def get_node_list(self):
        return [Heavy]


def comfy_entrypoint():
    return Extension()
"""
