"""The skeleton editor in headless Chromium on data it used to break on: a workflow whose editor holds a BODY_25 body,
``people: [null]``, frames that are numbers or text, and other malformed pose_json. Each case: no page error, a
visible message naming what was found, the editor still edits (add a person, drag its neck with real mouse events),
and the edited pose is accepted by the server when queued. One page for the whole module."""

from __future__ import annotations

import json

import pytest

from scripts.comfyui_harness import BUNDLED_FRONTEND, ComfyServer
from tests.comfyui.conftest import open_frontend

NECK, R_HIP = 1, 8  # dreamdance_core.pose.schema body-18 indices
DRAG = (30, 24)  # screen pixels
EDITOR = "app.graph.nodes.find((n) => n.type === 'DreamDancePoseEditor')"
EXTENSION_REGISTERED = "() => (window.app?.extensions ?? []).some((e) => e.name === 'dreamdance.PoseEditor')"

# Editor -> Render Pose -> Preview Image as a saved UI workflow, with the editor's pose_json replaced by `text`.
OPEN_WITH_POSE = """
async (text) => {
  app.graph.clear();
  const add = (type, x) => { const n = LiteGraph.createNode(type); n.pos = [x, 20]; app.graph.add(n); return n; };
  const editor = add("DreamDancePoseEditor", 20), render = add("DreamDanceRenderPose", 460);
  const preview = add("PreviewImage", 800);
  editor.connect(0, render, 0);
  render.connect(0, preview, 0);
  const workflow = (await app.graphToPrompt()).workflow;
  const saved = workflow.nodes.find((n) => n.type === "DreamDancePoseEditor");
  saved.widgets_values[0] = text;  // pose_json, the first widget
  await app.loadGraphData(JSON.parse(JSON.stringify(workflow)));
  app.canvas.ds.offset = [200, 120];
  app.canvas.ds.scale = 1;
  app.canvas.setDirty(true, true);
}
"""
STATE = f"""() => {{
  const e = {EDITOR}.poseEditor, r = e.message.getBoundingClientRect();
  return {{message: e.message.textContent, shown: r.height > 0 && getComputedStyle(e.message).display !== "none",
           frames: e.frames.length, people: e.people().length, error: e.error}};
}}"""
POSE = f"() => JSON.parse({EDITOR}.widgets.find((w) => w.name === 'pose_json').value)"


def _person(points: int = 18, x: float = 200.0) -> dict:
    body = [v for i in range(points) for v in (x + 4 * i, 150.0 + 12 * i, 1.0)]
    return {"pose_keypoints_2d": body, "face_keypoints_2d": None, "hand_left_keypoints_2d": None,
            "hand_right_keypoints_2d": None}


def _frame(*people, **extra) -> dict:
    return {"people": list(people), "canvas_width": 512, "canvas_height": 768, **extra}


BODY25_FILE = {"version": 1.3, "people": [{"person_id": [-1], **_person(25)}]}  # an OpenPose program file
# (case id, pose_json text, words the message must hold)
CASES = [
    ("body25-openpose-file", json.dumps(BODY25_FILE), "BODY_25 body mapped to the 18-point body"),
    ("body25-frames", json.dumps([_frame(_person(25)), _frame(_person(25, 260.0))]), "in 2 person-frame(s)"),
    ("body25-and-body18", json.dumps([_frame(_person(25), _person(18, 320.0))]), "BODY_25 body mapped"),
    ("people-null", json.dumps([_frame(None)]), "frame 1 person 1 is null"),
    ("people-null-and-person", json.dumps([_frame(None, _person())]), "person 1 is null"),
    ("frames-numbers", "[1, 2, 3]", "frame 1 is the number 1, not a pose"),
    ("frames-strings", '["walk", "jump"]', 'frame 2 is the text "jump", not a pose'),
    ("frames-null", "[null, null]", "frame 1 is null, not a pose"),
    ("frames-mixed", json.dumps([_frame(_person()), 5, "x", None, [1, 2]]), "frame 5 is a list, not a pose"),
    ("top-level-number", "42", "frame 1 is the number 42"),
    ("top-level-null", "null", "frame 1 is null"),
    ("top-level-text", '"a pose"', 'the text "a pose"'),
    ("people-text", json.dumps([_frame(), {"people": "nobody"}]), "frame 2: people is the text"),
    ("people-object", json.dumps([{"people": {"a": 1}}]), "people is an object, not a list"),
    ("part-text", json.dumps([_frame({"pose_keypoints_2d": "abc"})]), "pose_keypoints_2d is the text"),
    ("part-number", json.dumps([_frame({**_person(), "hand_left_keypoints_2d": 7})]), "hand_left_keypoints_2d is"),
    ("values-not-numbers", json.dumps([_frame({"pose_keypoints_2d": ["x", None, True] * 18})]), "not numbers"),
    ("body-20-points", json.dumps([_frame(_person(20))]), "pose_keypoints_2d has 20 points"),
    ("body-not-triples", json.dumps([_frame({"pose_keypoints_2d": [1.0] * 53})]), "53 numbers"),
    ("body-12-points", json.dumps([_frame(_person(12))]), "padded to 18 with missing points"),
    ("hand-5-points", json.dumps([_frame({**_person(), "hand_right_keypoints_2d": [9.0, 9.0, 1.0] * 5})]),
     "hand_right_keypoints_2d has 5 points"),
    ("canvas-negative", json.dumps([_frame(_person(), canvas_width=-5)]),
     "canvas_width is the number -5, not a positive number: 512x768"),
    ("canvas-text", json.dumps([_frame(_person(), canvas_height="tall")]), "canvas_height is the text"),
    ("invalid-json", "[{", "pose_json is not valid JSON"),
]


@pytest.fixture(scope="module")
def page(_browser, frontend_server: ComfyServer):
    """One page per frontend (classic mode) for the whole module."""
    page = open_frontend(_browser, frontend_server)
    page.wait_for_function(EXTENSION_REGISTERED, timeout=30_000)
    yield page
    page.context.close()


def _drag_neck(page, person: int) -> tuple[float, float]:
    """Drag ``person``'s neck by DRAG with real mouse events; returns how far the stored neck moved (canvas px)."""
    before = page.evaluate(POSE)[0]["people"][person]["pose_keypoints_2d"][3 * NECK:3 * NECK + 2]
    start = page.evaluate(f"() => {EDITOR}.poseEditor.jointClientPosition({person}, {NECK})")
    page.mouse.move(start["x"], start["y"])
    page.mouse.down()
    page.mouse.move(start["x"] + DRAG[0], start["y"] + DRAG[1], steps=5)
    page.mouse.up()
    after = page.evaluate(POSE)[0]["people"][person]["pose_keypoints_2d"][3 * NECK:3 * NECK + 2]
    return after[0] - before[0], after[1] - before[1]


# The editor's parser is our own JavaScript, the same in every frontend: every case runs on the newest frontend, and a
# sample of each kind (file mapping, null people, mixed frames, bad values, bad canvas, bad JSON) on the bundled one,
# whose page reloads take 3-4x longer (keeps the suite's time down).
BUNDLED_SAMPLE = {"body25-openpose-file", "people-null", "frames-mixed", "values-not-numbers", "canvas-negative",
                  "invalid-json"}


@pytest.mark.parametrize("case, text, words", [pytest.param(n, t, w, id=n) for n, t, w in CASES])
def test_editor_shows_bad_data_and_keeps_working(page, frontend: str, frontend_server: ComfyServer, case: str,
                                                  text: str, words: str):
    if frontend == BUNDLED_FRONTEND and case not in BUNDLED_SAMPLE:
        pytest.skip("the bundled frontend runs a sample of the cases (the parser is the same JavaScript)")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.evaluate(OPEN_WITH_POSE, text)
    page.wait_for_function(f"() => {EDITOR}?.poseEditor?.canvas.clientWidth > 50", timeout=30_000)
    page.wait_for_timeout(150)  # let the DOM widget settle where the canvas draws it
    state = page.evaluate(STATE)
    assert state["shown"] and words in state["message"], state
    if case == "body25-openpose-file":
        shot = frontend_server.output_dir.parent / "pose_editor_body25.png"
        page.screenshot(path=shot)
        print("screenshot:", shot)

    # still an editor: add a person to every frame and drag its neck
    page.locator(".dreamdance-pose-editor button[data-action='add person']:visible").click()
    person = page.evaluate(STATE)["people"] - 1
    page.wait_for_timeout(100)
    dx, dy = _drag_neck(page, person)
    assert dx > 10 and dy > 8, (dx, dy)
    state = page.evaluate(STATE)
    assert not state["shown"] and state["error"] is None, state  # the widget now holds what is shown
    if case == "frames-mixed":
        page.screenshot(path=frontend_server.output_dir.parent / "pose_editor_frames_mixed_after_edit.png")

    # what the editor saved is a pose the node accepts when queued
    prompt = page.evaluate("async () => (await app.graphToPrompt()).output")
    status, body = frontend_server.post("/prompt", {"prompt": prompt, "client_id": "pose-editor-bad-data"})
    assert status == 200, body
    assert not errors, errors


def test_body25_is_mapped_like_the_node(page):
    """The editor's BODY_25 mapping equals the node's (dreamdance_core.pose.io): point i <- BODY25_TO_BODY18[i]."""
    from dreamdance_core.pose import parse_pose_json

    text = json.dumps(BODY25_FILE)
    page.evaluate(OPEN_WITH_POSE, text)
    page.wait_for_function(f"() => {EDITOR}?.poseEditor?.canvas.clientWidth > 50", timeout=30_000)
    shown = page.evaluate(f"() => {EDITOR}.poseEditor.frames[0].people[0].pose_keypoints_2d")
    expected = parse_pose_json(text).body[0, 0]  # [18, 3]: the node's reading, in pixels of the inferred canvas
    assert len(shown) == 54
    assert [round(v, 3) for v in shown[0::3]] == [round(float(v), 3) for v in expected[:, 0]]
    assert [round(v, 3) for v in shown[1::3]] == [round(float(v), 3) for v in expected[:, 1]]
    assert shown[3 * R_HIP:3 * R_HIP + 2] == BODY25_FILE["people"][0]["pose_keypoints_2d"][27:29]  # BODY_25 point 9
