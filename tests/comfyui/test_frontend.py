"""The real ComfyUI frontend in headless Chromium, in both frontends the suite runs (the one ComfyUI 0.3.75 bundles
and the newest comfyui-frontend-package, see ``frontend`` in conftest.py) and in both of their node modes (classic:
nodes drawn on the LiteGraph canvas; Nodes 2.0: nodes as Vue components): every shipped workflow loads with every
node and widget known, no missing media or model flagged and no two nodes overlapping; the Python UI -> API converter
agrees with the frontend's own ``graphToPrompt``. Screenshots of every workflow go to a temporary folder (printed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scripts.comfyui_harness import BUNDLED_FRONTEND, REPO_ROOT, ComfyServer
from tests.comfyui.conftest import open_frontend
from tests.comfyui.workflow_api import ui_workflow_to_api

CORE_EXAMPLE = Path(__file__).parent / "data" / "core_example.json"
SHIPPED = sorted((REPO_ROOT / "workflows").glob("*.json"))
MODES = {"classic": False, "nodes2": True}  # id -> the Comfy.VueNodes.Enabled setting
# Input types the frontend draws as widgets (a list is a V1 combo); other inputs are sockets only.
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}

# Loads a UI-format workflow (it opens in a new tab) and reports what the frontend thinks of it: node types LiteGraph
# does not know, nodes it flagged as errors (missing nodes are drawn red, the newest frontend also flags a node whose
# media file is absent), missing nodes (the bundled frontend's dialog, the newest one's store), the newest frontend's
# missing media / missing model lists (its pinia stores; what its "Media input missing" overlay shows), its error
# overlay, schema warnings on the console and warning or error toasts (PrimeVue's in the bundled frontend, the toast
# store's in the newest).
LOAD_WORKFLOW = """
async (workflow) => {
  const nodes = [workflow, ...(workflow.definitions?.subgraphs ?? [])].flatMap((graph) => graph.nodes ?? []);
  const subgraphIds = new Set((workflow.definitions?.subgraphs ?? []).map((subgraph) => subgraph.id));
  const types = [...new Set(nodes.map((node) => node.type))].filter((type) => !subgraphIds.has(type));
  const warnings = [], warn = console.warn;
  console.warn = (...args) => { warnings.push(args.map(String).join(" ")); warn.apply(console, args); };
  try {
    await app.loadGraphData(workflow);
  } finally {
    console.warn = warn;
  }
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 300)));
  const stores = document.querySelector("#vue-app")?.__vue_app__?.config.globalProperties.$pinia?._s;
  const store = (name) => stores?.get(name);
  const missingNodes = store("missingNodesError")?.missingNodesError?.nodeTypes ?? [];
  const described = (item) => `${item.nodeType} ${item.widgetName}: ${item.name}`;
  return {
    unregistered: types.filter((type) => !LiteGraph.registered_node_types[type]),
    flagged: app.graph.nodes.filter((node) => node.has_errors).map((node) => node.type),
    missing_nodes: [
      ...[...document.querySelectorAll(".p-dialog")].map((dialog) => dialog.innerText)
        .filter((text) => /missing nodes/i.test(text)),
      ...missingNodes.map((item) => item.type ?? String(item)),
    ],
    missing_media: (store("missingMedia")?.missingMediaCandidates ?? []).filter((item) => item.isMissing !== false)
      .map(described),
    missing_models: (store("missingModel")?.missingModelCandidates ?? []).filter((item) => item.isMissing !== false)
      .map(described),
    overlay: [...document.querySelectorAll("[data-testid='error-overlay']")].map((overlay) => overlay.innerText),
    schema: warnings.filter((text) => /zod|invalid workflow/i.test(text)),
    toasts: [
      ...[...document.querySelectorAll(".p-toast-message-warn, .p-toast-message-error")]
        .map((toast) => toast.innerText),
      ...(store("toast")?.toasts ?? []).filter((toast) => /warn|error/.test(toast.kind))
        .map((toast) => [toast.title, toast.message].filter(Boolean).join(": ")),
    ],
  };
}
"""
CLEAN = {"unregistered": [], "flagged": [], "missing_nodes": [], "missing_media": [], "missing_models": [],
         "overlay": [], "schema": [], "toasts": []}
# Each node's widgets and the values it would save now (widgets are saved by position: a missing or extra widget
# shifts them), and its bounding box in graph units, title bar included: classic mode from its pos and size
# (LiteGraph keeps the title above pos), Nodes 2.0 from its Vue component's DOM box mapped back through the canvas
# transform (canvas pixels = (graph + offset) * scale).
NODES = """
(vueNodes) => {
  const title = LiteGraph.NODE_TITLE_HEIGHT, ds = app.canvas.ds;
  const canvas = app.canvas.canvas.getBoundingClientRect();
  return app.graph.nodes.map((node) => {
    let box = [node.pos[0], node.pos[1] - title, node.size[0], node.size[1] + title];
    if (vueNodes) {
      const element = document.querySelector(`[data-node-id="${node.id}"]`);
      const r = element?.getBoundingClientRect();
      box = r && r.width > 0 && r.height > 0 ? [(r.left - canvas.left) / ds.scale - ds.offset[0],
        (r.top - canvas.top) / ds.scale - ds.offset[1], r.width / ds.scale, r.height / ds.scale] : null;
    }
    return {id: node.id, type: node.type, title: node.title, box, widgets: (node.widgets ?? []).map((w) => w.name),
            values: JSON.parse(JSON.stringify(node.serialize().widgets_values ?? null))};
  });
}
"""
# Fits the view to the given boxes (graph units) for the screenshot, below the top menu and right of the side bar.
FIT_VIEW = """
async (boxes) => {
  const margin = 30, x0 = Math.min(...boxes.map((b) => b[0])) - margin;
  const y0 = Math.min(...boxes.map((b) => b[1])) - margin, x1 = Math.max(...boxes.map((b) => b[0] + b[2])) + margin;
  const y1 = Math.max(...boxes.map((b) => b[1] + b[3])) + margin;
  const rect = app.canvas.canvas.getBoundingClientRect(), left = 70, top = 90;
  const scale = Math.min((rect.width - left) / (x1 - x0), (rect.height - top) / (y1 - y0), 1.2);
  app.canvas.ds.scale = scale;
  app.canvas.ds.offset = [left / scale - x0, top / scale - y0];
  app.canvas.setDirty(true, true);
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 500)));
}
"""
VUE_NODE_COUNT = "document.querySelectorAll('[data-node-id]').length"  # Nodes 2.0: one DOM component per node


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("workflow_screenshots")
    print(f"workflow screenshots: {folder}")
    return folder


@pytest.fixture(scope="module")
def object_info(comfy_server: ComfyServer) -> dict[str, Any]:
    return comfy_server.get("/object_info")


@pytest.fixture(scope="module", params=list(MODES))
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def mode_page(_browser, frontend_server: ComfyServer, mode: str):
    """One page per frontend and mode for the shipped workflows (each loads in a new tab of it)."""
    page = open_frontend(_browser, frontend_server, vue_nodes=MODES[mode])
    yield page
    page.context.close()


def load_workflow(page, workflow: dict) -> dict:
    return page.evaluate(LOAD_WORKFLOW, workflow)


def laid_out_nodes(page, vue_nodes: bool) -> list[dict]:
    """The loaded graph's nodes once their layout has settled (Nodes 2.0: every node has its DOM component and two
    reads 300 ms apart give the same boxes; an image preview or a DOM widget can still grow a node after load)."""
    if vue_nodes:
        page.wait_for_function(f"() => {VUE_NODE_COUNT} >= app.graph.nodes.length", timeout=30_000)
    nodes = page.evaluate(NODES, vue_nodes)
    for _ in range(20):
        page.wait_for_timeout(300)
        nodes, before = page.evaluate(NODES, vue_nodes), nodes
        if nodes == before:
            break
    return nodes


def overlaps(nodes: list[dict]) -> list[str]:
    """Pairs of nodes whose boxes share an area (touching edges is fine)."""
    found = []
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            (ax, ay, aw, ah), (bx, by, bw, bh) = a["box"], b["box"]
            width, height = min(ax + aw, bx + bw) - max(ax, bx), min(ay + ah, by + bh) - max(ay, by)
            if width > 0.5 and height > 0.5:
                found.append(f"'{a['title']}' and '{b['title']}' overlap by {width:.0f} x {height:.0f}")
    return found


def expected_widgets(node_type: str, object_info: dict[str, Any]) -> list[str]:
    """The inputs of ``node_type`` the frontend must draw as widgets (``forceInput`` ones are sockets only)."""
    inputs = object_info[node_type]["input"]
    names = []
    for group in ("required", "optional"):
        for name, spec in inputs.get(group, {}).items():
            kind, options = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
            if (isinstance(kind, list) or kind in WIDGET_TYPES) and not options.get("forceInput"):
                names.append(name)
    return names


def widget_problems(workflow: dict, nodes: list[dict], object_info: dict[str, Any]) -> list[str]:
    saved = {node["id"]: node for node in workflow["nodes"]}
    problems = []
    for node in nodes:
        if node["type"] in object_info:
            missing = set(expected_widgets(node["type"], object_info)) - set(node["widgets"])
            if missing:
                problems.append(f"{node['title']}: no widget {sorted(missing)}")
        values = saved[int(node["id"])].get("widgets_values")
        if values is not None and node["values"] != values:
            problems.append(f"{node['title']}: widget values {node['values']} after load, {values} in the file")
    return problems


@pytest.mark.parametrize("path", [pytest.param(path, id=path.stem) for path in SHIPPED])
def test_shipped_workflow_loads_clean_and_nothing_overlaps(mode_page, frontend: str, mode: str, path: Path,
                                                           object_info: dict[str, Any], screenshot_dir: Path):
    """Loads with no missing node, widget, media or model and no warning; its nodes do not overlap as this frontend
    lays them out in this mode (Nodes 2.0 draws widgets taller than the canvas does)."""
    workflow = json.loads(path.read_text())
    report = load_workflow(mode_page, workflow)
    nodes = laid_out_nodes(mode_page, MODES[mode])
    shot = screenshot_dir / f"{frontend}-{mode}-{path.stem}.png"
    mode_page.evaluate(FIT_VIEW, [node["box"] for node in nodes if node["box"]])
    mode_page.screenshot(path=str(shot))
    print(f"screenshot: {shot}")
    assert report == CLEAN
    assert mode_page.evaluate(f"() => {VUE_NODE_COUNT}") == (len(nodes) if MODES[mode] else 0), "not drawn in this mode"
    assert [node["title"] for node in nodes if node["box"] is None] == []
    assert widget_problems(workflow, nodes, object_info) == []
    assert overlaps(nodes) == []


def test_overlap_check_sees_an_overlap(mode_page, mode: str):
    """Negative control: a node moved onto another is reported, in either mode (and no other pair changes)."""
    workflow = json.loads(CORE_EXAMPLE.read_text())
    load_workflow(mode_page, workflow)
    before = overlaps(laid_out_nodes(mode_page, MODES[mode]))
    first, second = workflow["nodes"][:2]  # EmptyImage above Int
    second["pos"] = [first["pos"][0] + 20, first["pos"][1] + 20]
    load_workflow(mode_page, workflow)
    added = set(overlaps(laid_out_nodes(mode_page, MODES[mode]))) - set(before)
    assert len(added) == 1 and "'EmptyImage' and 'Int' overlap" in added.pop(), added


def test_missing_nodes_media_and_schema_errors_are_detected(browser_page, frontend: str):
    """Negative controls for the test above: an unknown node type is reported three ways, a Load Image naming a file
    that is not in the input folder is flagged by the newest frontend (the bundled one does not look), and a workflow
    the frontend's schema rejects raises a warning."""
    workflow = json.loads(CORE_EXAMPLE.read_text())
    workflow["nodes"][3]["type"] = "DreamDanceNoSuchNode"
    report = load_workflow(browser_page, workflow)
    assert report["unregistered"] == ["DreamDanceNoSuchNode"]
    assert report["flagged"] == ["DreamDanceNoSuchNode"]
    assert len(report["missing_nodes"]) == 1 and "DreamDanceNoSuchNode" in report["missing_nodes"][0]

    workflow = json.loads((REPO_ROOT / "workflows" / "geometry_only.json").read_text())
    image = next(node for node in workflow["nodes"] if node["type"] == "LoadImage")
    image["widgets_values"][0] = "dreamdance_no_such_file.png"
    report = load_workflow(browser_page, workflow)
    if frontend == BUNDLED_FRONTEND:
        assert report["missing_media"] == []
    else:
        assert report["missing_media"] == ["LoadImage image: dreamdance_no_such_file.png"]
        assert report["flagged"] == ["LoadImage"] and "Media input missing" in " ".join(report["overlay"])

    workflow = json.loads(CORE_EXAMPLE.read_text())
    workflow["nodes"][0]["pos"] = "left"
    report = load_workflow(browser_page, workflow)
    assert any("Invalid workflow" in text for text in report["toasts"] + report["schema"]), report


def test_python_converter_matches_the_frontend(browser_page, comfy_server: ComfyServer):
    """The core example has a bypassed and a muted node, a reroute, a note, a seed with its control value and a
    widget fed by a link: both conversions must give the same API prompt."""
    workflow = json.loads(CORE_EXAMPLE.read_text())
    assert load_workflow(browser_page, workflow) == CLEAN
    from_frontend = browser_page.evaluate("async () => (await app.graphToPrompt()).output")
    assert ui_workflow_to_api(workflow, comfy_server.get("/object_info")) == from_frontend
