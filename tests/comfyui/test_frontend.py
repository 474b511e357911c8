"""The real ComfyUI frontend in headless Chromium: shipped workflows load with every node known, and the Python
UI -> API converter agrees with the frontend's own ``graphToPrompt``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.comfyui_harness import REPO_ROOT, ComfyServer
from tests.comfyui.workflow_api import ui_workflow_to_api

CORE_EXAMPLE = Path(__file__).parent / "data" / "core_example.json"
SHIPPED = sorted((REPO_ROOT / "workflows").glob("*.json"))
# Loads a UI-format workflow (it opens in a new tab) and reports what the frontend thinks of it: node types LiteGraph
# does not know, nodes it flagged as errors (missing nodes are drawn red), its missing-nodes dialog, and warning or
# error toasts (e.g. "Invalid workflow against zod schema").
LOAD_WORKFLOW = """
async (workflow) => {
  const nodes = [workflow, ...(workflow.definitions?.subgraphs ?? [])].flatMap((graph) => graph.nodes ?? []);
  const subgraphIds = new Set((workflow.definitions?.subgraphs ?? []).map((subgraph) => subgraph.id));
  const types = [...new Set(nodes.map((node) => node.type))].filter((type) => !subgraphIds.has(type));
  await app.loadGraphData(workflow);
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 300)));
  return {
    unregistered: types.filter((type) => !LiteGraph.registered_node_types[type]),
    flagged: app.graph.nodes.filter((node) => node.has_errors).map((node) => node.type),
    dialogs: [...document.querySelectorAll(".p-dialog")].map((dialog) => dialog.innerText)
      .filter((text) => /missing nodes/i.test(text)),
    toasts: [...document.querySelectorAll(".p-toast-message-warn, .p-toast-message-error")]
      .map((toast) => toast.innerText),
  };
}
"""


@pytest.fixture(scope="module")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("workflow_screenshots")
    print(f"workflow screenshots: {folder}")
    return folder


def load_workflow(page, workflow: dict) -> dict:
    return page.evaluate(LOAD_WORKFLOW, workflow)


@pytest.mark.parametrize(
    "path",
    [pytest.param(path, id=path.name) for path in SHIPPED]
    or [pytest.param(None, id="none", marks=pytest.mark.skip(reason="no workflows/*.json shipped yet"))],
)
def test_shipped_workflow_loads_with_every_node_known(browser_page, path: Path, screenshot_dir: Path):
    report = load_workflow(browser_page, json.loads(path.read_text()))
    shot = screenshot_dir / f"{path.stem}.png"
    browser_page.screenshot(path=str(shot))
    print(f"screenshot: {shot}")
    assert report == {"unregistered": [], "flagged": [], "dialogs": [], "toasts": []}


def test_schema_errors_and_missing_nodes_are_detected(browser_page):
    """Negative controls for the test above: a workflow the frontend's schema rejects raises a warning toast, and an
    unknown node type is reported three ways."""
    workflow = json.loads(CORE_EXAMPLE.read_text())
    workflow["nodes"][0]["outputs"][0]["slot_index"] = None
    assert any("Invalid workflow" in toast for toast in load_workflow(browser_page, workflow)["toasts"])

    workflow = json.loads(CORE_EXAMPLE.read_text())
    workflow["nodes"][3]["type"] = "DreamDanceNoSuchNode"
    report = load_workflow(browser_page, workflow)
    assert report["unregistered"] == ["DreamDanceNoSuchNode"]
    assert report["flagged"] == ["DreamDanceNoSuchNode"]
    assert len(report["dialogs"]) == 1 and "DreamDanceNoSuchNode" in report["dialogs"][0]


def test_python_converter_matches_the_frontend(browser_page, comfy_server: ComfyServer):
    """The core example has a bypassed and a muted node, a reroute, a note, a seed with its control value and a
    widget fed by a link: both conversions must give the same API prompt."""
    workflow = json.loads(CORE_EXAMPLE.read_text())
    assert load_workflow(browser_page, workflow) == {"unregistered": [], "flagged": [], "dialogs": [], "toasts": []}
    from_frontend = browser_page.evaluate("async () => (await app.graphToPrompt()).output")
    assert ui_workflow_to_api(workflow, comfy_server.get("/object_info")) == from_frontend
