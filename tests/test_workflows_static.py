"""The shipped workflows without a server: well-formed UI-format JSON, only this pack's node ids and a few core nodes,
shipped defaults a user wants, and a small same-name JPEG thumbnail for ComfyUI's Templates browser.

(tests/comfyui/ runs them in a real ComfyUI and loads them in its frontend.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.node_stubs import fake_comfyui, import_pack

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO_ROOT / "workflows").glob("*.json"))
EXPECTED = {"geometry_only", "pose_editing", "full_pipeline", "long_video", "stage2_external_geometry", "driving_video"}
# Core ComfyUI 0.3.75 nodes (and frontend-only nodes) the shipped workflows may use.
CORE_NODES = {"LoadImage", "SaveImage", "PreviewImage", "SaveAnimatedWEBP", "ImageBatch", "Note", "MarkdownNote",
              "Reroute", "LoadVideo", "GetVideoComponents"}
THUMBNAIL_MAX_BYTES = 60_000
DEMO = "(demo: synthetic mannequins)"


def _workflow(path: Path) -> dict:
    return json.loads(path.read_text())


def _nodes_of(workflow: dict, node_type: str) -> list[dict]:
    return [node for node in workflow["nodes"] if node["type"] == node_type]


@pytest.fixture(scope="module")
def pack_node_ids(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The node ids of the pack, imported as ComfyUI does (with fake ComfyUI modules)."""
    with fake_comfyui(tmp_path_factory.mktemp("comfyui")):
        return set(import_pack().NODE_CLASS_MAPPINGS)


def test_the_expected_workflows_are_shipped():
    assert EXPECTED <= {path.stem for path in SHIPPED}


workflow_paths = pytest.mark.parametrize("path", SHIPPED, ids=[path.name for path in SHIPPED])


@workflow_paths
def test_links_and_sockets_agree(path: Path):
    workflow = _workflow(path)
    nodes = {node["id"]: node for node in workflow["nodes"]}
    links = {link[0]: link for link in workflow["links"]}
    for link_id, origin, origin_slot, target, target_slot, kind in links.values():
        assert link_id in (nodes[origin]["outputs"][origin_slot]["links"] or []), f"link {link_id} not on its origin"
        assert nodes[target]["inputs"][target_slot]["link"] == link_id, f"link {link_id} not on its target"
        assert kind == nodes[origin]["outputs"][origin_slot]["type"]
    sockets = [socket for node in nodes.values() for socket in node.get("inputs", [])]
    used = {socket["link"] for socket in sockets if socket["link"] is not None}
    assert used == set(links)
    assert workflow["last_node_id"] >= max(nodes) and workflow["last_link_id"] >= max(links, default=0)


@workflow_paths
def test_only_pack_and_core_nodes(path: Path, pack_node_ids: set[str]):
    types = {node["type"] for node in _workflow(path)["nodes"]}
    unknown = types - pack_node_ids - CORE_NODES
    assert not unknown, f"{path.name} uses node types that are neither DreamDance nodes nor known core nodes"
    assert types & pack_node_ids


@workflow_paths
def test_shipped_defaults_run_out_of_the_box(path: Path):
    """A fresh install has no weights: both stages run the shipped demo checkpoints (precision auto: fp32 on a CPU,
    bf16/fp16 on a GPU) at the size and settings they were trained and benchmarked at."""
    from dreamdance_core.demo import stage1_demo, stage2_demo

    demo, video_demo = stage1_demo(), stage2_demo()
    workflow = _workflow(path)
    for loader in _nodes_of(workflow, "DreamDanceGeometryModelLoader"):  # weights, base, clip vision, precision
        assert loader["widgets_values"][0] == DEMO and loader["widgets_values"][3] == "auto"
    for loader in _nodes_of(workflow, "DreamDanceVideoModelLoader"):  # weights, svd, precision
        assert loader["widgets_values"][0] == DEMO and loader["widgets_values"][2] == "auto"
    for node in _nodes_of(workflow, "DreamDancePoseToGeometry"):  # width, height, steps, seed, control, cfg x3
        values = node["widgets_values"]
        assert values[:3] == [demo.width, demo.height, demo.steps] and tuple(values[5:8]) == demo.guidance
    for node in _nodes_of(workflow, "DreamDanceAnimate"):  # width, height, steps, seed, control, min / max cfg
        values = node["widgets_values"]
        assert values[:3] == [video_demo.width, video_demo.height, video_demo.steps]
        assert tuple(values[5:7]) == video_demo.guidance
    if _nodes_of(workflow, "LoadImage"):  # a placeholder image name: a note must say to load one's own
        notes = [node["widgets_values"][0] for node in _nodes_of(workflow, "Note")]
        assert any("Load Image" in text for text in notes)


@workflow_paths
def test_same_name_jpeg_thumbnail(path: Path):
    thumbnail = path.with_suffix(".jpg")
    assert thumbnail.is_file(), f"{path.name} has no thumbnail {thumbnail.name}"
    assert thumbnail.stat().st_size < THUMBNAIL_MAX_BYTES
    with Image.open(thumbnail) as image:
        assert image.format == "JPEG" and min(image.size) >= 200


TITLE_HEIGHT = 30  # LiteGraph.NODE_TITLE_HEIGHT: a node's title bar lies above its pos
# scripts/make_workflows.py leaves at least this much below a stacked node (Nodes 2.0 draws nodes taller)
STACK_GAP = 50


@workflow_paths
def test_no_two_nodes_overlap(path: Path):
    """On the classic canvas as saved (pos, size, title bar above pos), with the gap below each node that leaves room
    for the taller Nodes 2.0 layout (tests/comfyui/test_frontend.py measures both modes in both frontends)."""
    boxes = [(node.get("title") or node["type"], node["pos"][0], node["pos"][1] - TITLE_HEIGHT, node["size"][0],
              node["size"][1] + TITLE_HEIGHT + STACK_GAP) for node in _workflow(path)["nodes"]]
    overlapping = [
        (a[0], b[0]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
        if min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]) > 0 and min(a[2] + a[4], b[2] + b[4]) - max(a[2], b[2]) > 0
    ]
    assert overlapping == []
