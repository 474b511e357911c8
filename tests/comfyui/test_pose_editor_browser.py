"""The skeleton editor in the real ComfyUI frontend (both frontends, classic and Nodes 2.0 mode): open a workflow
holding the editor, drag a joint with the mouse, save/reload the workflow, run the graph on the server, and find the
moved joint in the rendered image."""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pytest

from scripts.comfyui_harness import ComfyServer
from tests.comfyui.conftest import open_frontend

NECK, NECK_COLOR = 1, (255, 85, 0)  # dreamdance_core.pose.schema: joint 1, BODY_COLORS[1]
DRAG = (40, 30)  # screen pixels
# the pack's frontend extension is loaded (it keeps no global of its own: comfy-test lint forbids window writes)
EXTENSION_REGISTERED = "() => (window.app?.extensions ?? []).some((e) => e.name === 'dreamdance.PoseEditor')"

# Editor -> Render Pose -> Save Image, serialised as a UI workflow (what a user saves and drops back in).
BUILD_WORKFLOW = """
async (prefix) => {
  app.graph.clear();
  const add = (type, x) => { const n = LiteGraph.createNode(type); n.pos = [x, 20]; app.graph.add(n); return n; };
  const editor = add("DreamDancePoseEditor", 20), render = add("DreamDanceRenderPose", 460);
  const save = add("SaveImage", 800);
  editor.connect(0, render, 0);
  render.connect(0, save, 0);
  save.widgets.find((w) => w.name === "filename_prefix").value = prefix;
  return JSON.stringify((await app.graphToPrompt()).workflow);  // the text a saved workflow file holds
}
"""
OPEN_WORKFLOW = """
async (text) => {
  await app.loadGraphData(JSON.parse(text));
  app.canvas.ds.offset = [200, 120];  // clear of the side bar and the top menu
  app.canvas.ds.scale = 1;
  app.canvas.setDirty(true, true);
}
"""
EDITOR = "app.graph.nodes.find((n) => n.type === 'DreamDancePoseEditor')"
POSE_STATE = f"() => JSON.parse({EDITOR}.widgets.find((w) => w.name === 'pose_json').value)"


def _editor_ready(page) -> None:
    page.wait_for_function(
        f"() => {{ const n = {EDITOR}; const p = n?.poseEditor?.jointClientPosition(0, {NECK});"
        " return !!p && n.poseEditor.canvas.clientWidth > 50 && p.x > 0 && p.y > 0; }",
        timeout=30_000,
    )
    page.wait_for_timeout(300)  # let the DOM widget settle where the canvas draws it


def _click(page, title: str) -> None:
    page.locator(f".dreamdance-pose-editor button[data-action='{title}']").click()


def _wait_for_file(path, timeout: float = 90.0) -> None:
    """Wait until ComfyUI has written the image completely: it exists and decodes (a busy machine can show the file
    while the writer is still filling it)."""
    from PIL import Image

    deadline = time.monotonic() + timeout
    while True:
        if path.exists():
            try:
                with Image.open(path) as image:
                    image.load()
                return
            except OSError:  # truncated: still being written
                pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} not written completely within {timeout} s")
        time.sleep(0.2)


@pytest.mark.parametrize("mode", ["classic", "nodes2"])
def test_drag_a_joint_and_render_it(_browser, frontend_server: ComfyServer, frontend: str, mode: str):
    """In both frontends and both node modes (classic canvas, Nodes 2.0 Vue nodes)."""
    Image = pytest.importorskip("PIL.Image")
    page = open_frontend(_browser, frontend_server, vue_nodes=mode == "nodes2")
    try:
        _drag_a_joint_and_render_it(page, frontend_server, f"{frontend}-{mode}", Image)
    finally:
        page.context.close()


def _drag_a_joint_and_render_it(page, server: ComfyServer, name: str, Image) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.wait_for_function(EXTENSION_REGISTERED, timeout=30_000)
    prefix = f"pose_editor_{uuid.uuid4().hex[:8]}"
    workflow = page.evaluate(BUILD_WORKFLOW, prefix)
    page.evaluate(OPEN_WORKFLOW, workflow)
    _editor_ready(page)
    before = page.evaluate(POSE_STATE)
    shot = server.output_dir.parent / f"pose_editor-{name}.png"
    page.screenshot(path=str(shot))
    print("screenshot:", shot)
    assert page.locator("text=Invalid workflow").count() == 0

    # Frames: step forward and back; mark frame 0 as a key.
    _click(page, "next frame")
    assert page.evaluate(f"() => {EDITOR}.poseEditor.frame") == 1
    _click(page, "previous frame")
    _click(page, "mark keyframe")
    assert page.evaluate(f"() => {EDITOR}.widgets.find((w) => w.name === 'keyframes').value") == "0"

    # Drag the neck of frame 0 with real mouse events.
    start = page.evaluate(f"() => {EDITOR}.poseEditor.jointClientPosition(0, {NECK})")
    page.mouse.move(start["x"], start["y"])
    page.mouse.down()
    page.mouse.move(start["x"] + DRAG[0], start["y"] + DRAG[1], steps=6)
    page.mouse.up()
    after = page.evaluate(POSE_STATE)
    old = np.array(before[0]["people"][0]["pose_keypoints_2d"][3 * NECK:3 * NECK + 2])
    new = np.array(after[0]["people"][0]["pose_keypoints_2d"][3 * NECK:3 * NECK + 2])
    moved = new - old
    assert moved[0] > 15 and moved[1] > 10 and abs(moved[0] / moved[1] - DRAG[0] / DRAG[1]) < 0.2, moved
    assert after[1:] == before[1:], "only the current frame changes"

    # The edit is part of the workflow: it survives serialise + reopen (what save/load and drag-and-drop do).
    page.evaluate(OPEN_WORKFLOW, page.evaluate("async () => JSON.stringify((await app.graphToPrompt()).workflow)"))
    _editor_ready(page)
    assert page.evaluate(POSE_STATE) == after

    # Run the graph on the server; the first rendered frame shows the neck where it was dragged.
    page.evaluate("async () => { await app.queuePrompt(0, 1); }")
    first = server.output_dir / f"{prefix}_00001_.png"
    _wait_for_file(first)
    image = Image.open(first)
    pixels = np.asarray(image.convert("RGB"))
    x, y = (int(round(v)) for v in new)
    assert tuple(pixels[y, x]) == NECK_COLOR
    ox, oy = (int(round(v)) for v in old)
    assert tuple(pixels[oy, ox]) != NECK_COLOR
    # The PNG carries the workflow (dropping it on ComfyUI restores the edited pose).
    embedded = json.loads(image.info["workflow"])
    editor_node = next(n for n in embedded["nodes"] if n["type"] == "DreamDancePoseEditor")
    assert json.loads(editor_node["widgets_values"][0]) == after
    assert not [e for e in errors if "pose_editor" in e], errors
