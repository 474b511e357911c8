"""(Re)build the shipped workflows (``workflows/*.json``) and their thumbnails through the real ComfyUI frontend.

    .venv/bin/python -m scripts.make_workflows [name ...]     # from the repository root; default: every workflow

Starts a throw-away ComfyUI with this pack (:mod:`scripts.comfyui_harness`, which the real-ComfyUI tests use too),
opens its frontend in headless Chromium, builds each graph there from the specs below (the frontend creates the nodes,
so sockets and widget values are exactly what it saves), writes ``JSON.parse(JSON.stringify(app.graph.serialize()))``
(plain ``serialize()`` leaves ``undefined`` values that the loader's schema rejects once written as JSON) and a
same-name ``.jpg`` thumbnail (ComfyUI's Templates browser shows it). Needs scripts/setup_comfyui.sh to have run.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dreamdance_core.demo import stage1_demo, stage2_demo
from dreamdance_core.pose import sample_dance, to_pose_keypoint
from scripts.comfyui_harness import APP_READY, CHROMIUM, CHROMIUM_ARGS, REPO_ROOT, ComfyInstall, ComfyServer, ServerDirs
from scripts.make_example_inputs import DRIVING_VIDEO, MAP_FILES, REFERENCE_IMAGE, reference_pose_json

WORKFLOWS = REPO_ROOT / "workflows"
IMAGE_NODE = (240, 400)  # Load Image nodes are sized up front: the preview that fills them arrives after layout
THUMBNAIL_SIZE = (480, 320)
THUMBNAIL_MAX_BYTES = 60_000
# Stage 1 as the shipped demo checkpoint samples (dreamdance_core/demo/stage1/demo.json);
# real weights: 256x384, 25 steps
DEMO_STAGE1 = stage1_demo()
STAGE1 = {"width": DEMO_STAGE1.width, "height": DEMO_STAGE1.height, "steps": DEMO_STAGE1.steps,
          **dict(zip(("cfg_rgb", "cfg_normal", "cfg_depth"), DEMO_STAGE1.guidance))}

REFERENCE_NOTE = (
    "Load Image: pick a photo of the person to animate (whole body, facing the camera, plain background); "
    f"'{REFERENCE_IMAGE}' is the pack's example (a synthetic mannequin, copied into ComfyUI's input folder); upload "
    "your own with the node's upload button.\n\n"
    "Geometry model: '(demo: synthetic mannequins)' is the small model shipped with the pack, trained on synthetic "
    "mannequins at 64x96, so this graph samples at that size: it draws real maps for mannequin-like references. For "
    "real maps put DreamDance Stage-1 weights (trained with train/stage1.py) into ComfyUI/models/dreamdance/, an SD1.5 "
    "checkpoint into models/checkpoints and a CLIP image encoder into models/clip_vision, choose them in the loader "
    "and set width x height to 256x384 (the paper's Stage-1 size) and 25 steps."
)


@dataclass
class Node:
    """One node of a workflow spec: ``col`` is its column (nodes stack in spec order), ``widgets`` sets widget values
    by name, ``size`` overrides the size the frontend computes."""

    key: str
    type: str
    col: int
    widgets: dict[str, Any] = field(default_factory=dict)
    title: str | None = None
    size: tuple[int, int] | None = None


@dataclass
class Workflow:
    """Nodes, links ``(from key, output name, to key, input name)`` and a one-line description."""

    name: str
    description: str
    nodes: list[Node]
    links: list[tuple[str, str, str, str]]


def note(key: str, col: int, text: str, size: tuple[int, int] = (320, 250)) -> Node:
    return Node(key, "Note", col, {"text": text}, title="Read me", size=size)


def key_poses_json(frames: tuple[int, ...] = (0, 6, 12, 18)) -> str:
    """A few key poses of the sample dance (body only), a small start for the editor."""
    seq = sample_dance(24, 512, 768).frames(list(frames))
    seq.face[:] = 0.0
    seq.hands[:] = 0.0
    seq.body[..., :2] = seq.body[..., :2].round(1)
    return json.dumps(to_pose_keypoint(seq), separators=(",", ":"))


def geometry_only() -> Workflow:
    return Workflow(
        "geometry_only",
        "Stage 1 only: reference image + sample dance -> depth and normal maps, previewed and saved.",
        [
            note("note", 0, REFERENCE_NOTE),
            Node("image", "LoadImage", 0, {"image": REFERENCE_IMAGE}, title="Reference image", size=IMAGE_NODE),
            Node("pose", "DreamDanceSamplePose", 1, {"num_frames": 16, "width": 256, "height": 384}),
            Node("loader", "DreamDanceGeometryModelLoader", 1, {"stage1_weights": "(demo: synthetic mannequins)"}),
            Node("geometry", "DreamDancePoseToGeometry", 2, {**STAGE1, "seed": 0, "control_after_generate": "fixed"}),
            Node("preview", "DreamDanceGeometryPreview", 3, size=(400, 300)),
            Node("save_depth", "SaveImage", 2, {"filename_prefix": "dreamdance/depth"}, title="Save depth"),
            Node("save_normal", "SaveImage", 2, {"filename_prefix": "dreamdance/normal"}, title="Save normal"),
        ],
        [
            ("loader", "geometry_model", "geometry", "geometry_model"),
            ("image", "IMAGE", "geometry", "reference"),
            ("pose", "pose", "geometry", "pose_keypoint"),
            ("geometry", "depth", "preview", "depth"),
            ("geometry", "normal", "preview", "normal"),
            ("geometry", "pose_images", "preview", "pose_images"),
            ("image", "IMAGE", "preview", "reference"),
            ("geometry", "depth", "save_depth", "images"),
            ("geometry", "normal", "save_normal", "images"),
        ],
    )


POSE_EDITING_NOTE = (
    "Pose Editor: drag joints, step through the key poses (one editor frame per key), add or hide points.\n\n"
    "Interpolate Key Poses turns the keys into a smooth motion of any length.\n\n"
    "Retarget fits the motion to the body of the person you animate: paste their pose into 'Reference pose' "
    "(POSE_KEYPOINT JSON, e.g. from a DWPose node on the reference image, or a file saved by Save Pose). "
    "Bypass it (Ctrl+B) to keep the edited body.\n\n"
    "The saved pose file feeds the animation workflows (Load Pose)."
)


def pose_editing() -> Workflow:
    return Workflow(
        "pose_editing",
        "Edit key poses, interpolate them into a motion, fit it to the reference body, render and save.",
        [
            note("note", 0, POSE_EDITING_NOTE, size=(340, 300)),
            Node("editor", "DreamDancePoseEditor", 0, {"pose_json": key_poses_json(), "keyframes": "0, 1, 2, 3"}),
            Node("interpolate", "DreamDanceInterpolatePoses", 1, {"num_frames": 48, "method": "cubic"}),
            Node("reference", "DreamDanceLoadPose", 1, {"pose_json": reference_pose_json()}, title="Reference pose",
                 size=(320, 200)),
            Node("retarget", "DreamDanceRetargetPose", 2),
            Node("render", "DreamDanceRenderPose", 3),
            Node("save_pose", "DreamDanceSavePose", 3, {"filename_prefix": "dreamdance/pose"}),
            Node("save_video", "SaveAnimatedWEBP", 3, {"filename_prefix": "dreamdance/pose", "fps": 15.0},
                 title="Save pose video"),
        ],
        [
            ("editor", "pose", "interpolate", "keyframes"),
            ("interpolate", "pose", "retarget", "driving_pose"),
            ("reference", "pose", "retarget", "reference_pose"),
            ("retarget", "pose", "render", "pose"),
            ("retarget", "pose", "save_pose", "pose"),
            ("render", "pose_images", "save_video", "images"),
        ],
    )


# Stage 2 as the shipped demo checkpoint samples (dreamdance_core/demo/stage2/demo.json);
# real weights: 512x768, 25 steps
DEMO_STAGE2 = stage2_demo()
STAGE2 = {"width": DEMO_STAGE2.width, "height": DEMO_STAGE2.height, "steps": DEMO_STAGE2.steps,
          **dict(zip(("min_cfg", "max_cfg"), DEMO_STAGE2.guidance))}
VIDEO_LOADER = {"stage2_weights": "(demo: synthetic mannequins)", "precision": "auto"}  # fp32 on CPUs, half on GPUs
VIDEO_FPS = 7.0  # SVD's frame-rate conditioning default (DreamDance Animate's fps input)
VIDEO_NOTE = (
    "\n\nVideo model: '(demo: synthetic mannequins)' is the small Stage-2 model shipped with the pack (with its own "
    "small SVD), trained on the same mannequins at 64x96, so Animate works at that size. For real videos put "
    "DreamDance Stage-2 weights (train/stage2.py) into models/dreamdance/ and SVD img2vid 1.1 "
    "(svd_xt_1_1.safetensors) into models/checkpoints, choose them in the loader, set Animate to 512x768 (the "
    "paper's Stage-2 size) and 25 steps; the geometry maps are resized to it."
)


def animation(name: str, description: str, num_frames: int, windows: bool, note_text: str) -> Workflow:
    """Image + pose -> Stage 1 geometry -> Stage 2 video -> animated WEBP; ``windows`` adds shared window options."""
    nodes = [
        note("note", 0, note_text, size=(340, 330)),
        Node("image", "LoadImage", 0, {"image": REFERENCE_IMAGE}, title="Reference image", size=IMAGE_NODE),
        Node("pose", "DreamDanceSamplePose", 1, {"num_frames": num_frames, "width": 512, "height": 768}),
        Node("render", "DreamDanceRenderPose", 1, {"width": 512, "height": 768}),
        Node("geometry_loader", "DreamDanceGeometryModelLoader", 2, {"stage1_weights": "(demo: synthetic mannequins)"}),
        Node("video_loader", "DreamDanceVideoModelLoader", 2, VIDEO_LOADER),
        Node("geometry", "DreamDancePoseToGeometry", 3, {**STAGE1, "seed": 0, "control_after_generate": "fixed"}),
        Node("animate", "DreamDanceAnimate", 4, {**STAGE2, "seed": 0, "control_after_generate": "fixed"}),
        Node("save", "SaveAnimatedWEBP", 5, {"filename_prefix": f"dreamdance/{name}", "fps": VIDEO_FPS},
             title="Save video"),
    ]
    links = [
        ("pose", "pose", "render", "pose"),
        ("pose", "pose", "geometry", "pose_keypoint"),
        ("geometry_loader", "geometry_model", "geometry", "geometry_model"),
        ("image", "IMAGE", "geometry", "reference"),
        ("video_loader", "video_model", "animate", "video_model"),
        ("image", "IMAGE", "animate", "reference"),
        ("render", "pose_images", "animate", "pose_images"),
        ("geometry", "depth", "animate", "depth"),
        ("geometry", "normal", "animate", "normal"),
        ("animate", "frames", "save", "images"),
    ]
    if windows:
        nodes.append(Node("windows", "DreamDanceWindowOptions", 2, {"length": 16, "overlap": 4}))
        links += [("windows", "windows", "geometry", "windows"), ("windows", "windows", "animate", "windows")]
    return Workflow(name, description, nodes, links)


POSE_SOURCE_NOTE = (
    "\n\nThe motion: Sample Dance Pose is a built-in dance; use Load Pose (a POSE_KEYPOINT or OpenPose file, e.g. "
    "saved by the pose_editing workflow or a DWPose node) instead."
)


def full_pipeline() -> Workflow:
    return animation(
        "full_pipeline",
        "Image + pose -> depth/normal (Stage 1) -> video (Stage 2) -> saved animated WEBP.",
        16, False, REFERENCE_NOTE + POSE_SOURCE_NOTE + VIDEO_NOTE,
    )


def long_video() -> Workflow:
    return animation(
        "long_video",
        "The full pipeline on a long pose sequence: both stages denoise overlapping 16-frame windows.",
        72, True, REFERENCE_NOTE + VIDEO_NOTE + "\n\nWindow Options (shared by both stages): every denoising step "
        "runs overlapping windows of 16 frames and blends the overlaps, so the models never see more than 16 frames "
        "at once (the length they are trained on).",
    )


EXTERNAL_NOTE = (
    "Stage 2 with geometry from elsewhere: any IMAGE batches work as control maps, one image per frame "
    "(depth: bright = near; normals: RGB = xyz; pose: OpenPose colours). Load Image reads every frame of an "
    "animated WEBP/GIF as one batch; for video files use Load Video -> Get Video Components. "
    f"'{MAP_FILES['depth']}' etc. are the pack's examples (8 frames of a synthetic dance, copied into ComfyUI's "
    "input folder); upload your own with each node's upload button. Leave a map unconnected to animate without it."
    "\n\nLoad Image (reference): the person to animate." + VIDEO_NOTE
)


def stage2_external_geometry() -> Workflow:
    return Workflow(
        "stage2_external_geometry",
        "Stage 2 only: animate a reference image from pose, depth and normal maps made by any other tool.",
        [
            note("note", 0, EXTERNAL_NOTE, size=(340, 330)),
            Node("image", "LoadImage", 0, {"image": REFERENCE_IMAGE}, title="Reference image", size=IMAGE_NODE),
            Node("pose", "LoadImage", 1, {"image": MAP_FILES["pose"]}, title="Pose maps", size=IMAGE_NODE),
            Node("depth", "LoadImage", 1, {"image": MAP_FILES["depth"]}, title="Depth maps", size=IMAGE_NODE),
            Node("normal", "LoadImage", 2, {"image": MAP_FILES["normal"]}, title="Normal maps", size=IMAGE_NODE),
            Node("video_loader", "DreamDanceVideoModelLoader", 2, VIDEO_LOADER),
            Node("animate", "DreamDanceAnimate", 3, {**STAGE2, "seed": 0, "control_after_generate": "fixed"}),
            Node("save", "SaveAnimatedWEBP", 4, {"filename_prefix": "dreamdance/external", "fps": VIDEO_FPS},
                 title="Save video"),
        ],
        [
            ("video_loader", "video_model", "animate", "video_model"),
            ("image", "IMAGE", "animate", "reference"),
            ("pose", "IMAGE", "animate", "pose_images"),
            ("depth", "IMAGE", "animate", "depth"),
            ("normal", "IMAGE", "animate", "normal"),
            ("animate", "frames", "save", "images"),
        ],
    )


DRIVING_NOTE = (
    f"Driving video: Load Video reads the pack's example '{DRIVING_VIDEO}', a short clip of rendered OpenPose "
    "skeletons (body only), and Pose from Image reads their joints back. Upload your own video with its upload "
    "button.\n\n"
    "A video of a real person needs a pose estimator: add comfyui_controlnet_aux's DWPose Estimator, connect Get "
    "Video Components' images to it, and its POSE_KEYPOINT output to Retarget's driving_pose (in place of Pose from "
    "Image).\n\n"
    "Retarget fits the motion to the body of the person in the reference image. Its reference_pose here is the "
    "example mannequin's pose, as text in 'Reference pose'; with your own photo, run DWPose Estimator on it and "
    "connect that POSE_KEYPOINT to reference_pose instead.\n\n"
    "Load Image (reference): the person to animate." + VIDEO_NOTE
)


def driving_video() -> Workflow:
    return Workflow(
        "driving_video",
        "From a driving video: poses read from the video, fitted to the reference body, then depth/normal (Stage 1) "
        "and video (Stage 2).",
        [
            note("note", 0, DRIVING_NOTE, size=(360, 420)),
            Node("video", "LoadVideo", 0, {"file": DRIVING_VIDEO}, title="Driving video", size=IMAGE_NODE),
            Node("components", "GetVideoComponents", 1, size=(320, 120)),
            Node("from_image", "DreamDancePoseFromImage", 1, size=(360, 80)),
            Node("reference", "DreamDanceLoadPose", 1, {"pose_json": reference_pose_json()}, title="Reference pose",
                 size=(320, 220)),
            Node("image", "LoadImage", 1, {"image": REFERENCE_IMAGE}, title="Reference image", size=IMAGE_NODE),
            Node("retarget", "DreamDanceRetargetPose", 2),
            Node("render", "DreamDanceRenderPose", 2, {"width": 512, "height": 768}),
            Node("geometry_loader", "DreamDanceGeometryModelLoader", 3,
                 {"stage1_weights": "(demo: synthetic mannequins)"}),
            Node("geometry", "DreamDancePoseToGeometry", 3, {**STAGE1, "seed": 0, "control_after_generate": "fixed"}),
            Node("video_loader", "DreamDanceVideoModelLoader", 4, VIDEO_LOADER),
            Node("animate", "DreamDanceAnimate", 4, {**STAGE2, "seed": 0, "control_after_generate": "fixed"}),
            Node("save", "SaveAnimatedWEBP", 5, {"filename_prefix": "dreamdance/driving_video", "fps": VIDEO_FPS},
                 title="Save video"),
        ],
        [
            ("video", "VIDEO", "components", "video"),
            ("components", "images", "from_image", "pose_images"),
            ("from_image", "pose", "retarget", "driving_pose"),
            ("reference", "pose", "retarget", "reference_pose"),
            ("retarget", "pose", "render", "pose"),
            ("retarget", "pose", "geometry", "pose_keypoint"),
            ("geometry_loader", "geometry_model", "geometry", "geometry_model"),
            ("image", "IMAGE", "geometry", "reference"),
            ("video_loader", "video_model", "animate", "video_model"),
            ("image", "IMAGE", "animate", "reference"),
            ("render", "pose_images", "animate", "pose_images"),
            ("geometry", "depth", "animate", "depth"),
            ("geometry", "normal", "animate", "normal"),
            ("animate", "frames", "save", "images"),
        ],
    )


SPECS = {
    spec.__name__: spec
    for spec in (geometry_only, pose_editing, full_pipeline, long_video, stage2_external_geometry, driving_video)
}

# Builds a spec in the open graph: nodes laid out in columns (each column as wide as its widest node), links by
# socket name; returns the saved workflow. Fails loudly on an unknown node type, widget or socket.
BUILD = """
async (spec) => {
  app.graph.clear();
  const made = {};
  for (const s of spec.nodes) {
    const node = LiteGraph.createNode(s.type);
    if (!node) throw new Error(`unknown node type ${s.type}`);
    app.graph.add(node);
    if (s.title) node.title = s.title;
    for (const [name, value] of Object.entries(s.widgets)) {
      const widget = node.widgets?.find((w) => w.name === name) ?? (s.type === "Note" ? node.widgets?.[0] : null);
      if (!widget) throw new Error(`${s.type} has no widget ${name}`);
      widget.value = value;
    }
    if (s.size) node.setSize(s.size);
    made[s.key] = node;
  }
  for (const [from, output, to, input] of spec.links) {
    const [a, b] = [made[from], made[to]];
    const [out, inp] = [a.findOutputSlot(output), b.findInputSlot(input)];
    if (out < 0 || inp < 0) throw new Error(`no socket for link ${from}.${output} -> ${to}.${input}`);
    if (!a.connect(out, b, inp)) throw new Error(`link ${from}.${output} -> ${to}.${input} refused`);
  }
  const gap = 60, title = LiteGraph.NODE_TITLE_HEIGHT;
  // Nodes 2.0 (the frontend's Vue nodes) draws a node taller than the canvas size saved here: about 3 units more per
  // widget row plus a footer on nodes sized by their widgets (frontend 1.58.1: up to +92 for Animate), and the bundled
  // 1.32.9 scales the layout by 1.2 and grows an image preview. The space below each node leaves room for that.
  const nodes2Room = (s, node) => (s.size ? 36 : 20 + 3 * (node.widgets?.length ?? 0));
  let x = 0;
  for (const col of [...new Set(spec.nodes.map((s) => s.col))].sort((p, q) => p - q)) {
    const specs = spec.nodes.filter((s) => s.col === col), nodes = specs.map((s) => made[s.key]);
    let y = title;
    nodes.forEach((node, i) => {
      node.pos = [x, y];
      y += node.size[1] + title + gap / 2 + nodes2Room(specs[i], node);
    });
    x += Math.max(...nodes.map((node) => node.size[0])) + gap;
  }
  // the view a user gets on opening it (saved in extra.ds): the whole graph clear of the side bar and menus
  const height = Math.max(...app.graph.nodes.map((node) => node.pos[1] + node.size[1]));
  const scale = Math.min(1, 1480 / x, 820 / height);
  app.canvas.ds.scale = scale;
  app.canvas.ds.offset = [80 / scale, 90 / scale];
  app.canvas.setDirty(true, true);
  return JSON.parse(JSON.stringify(app.graph.serialize()));
}
"""
# Opens a saved workflow as a user gets it (in a new tab), hides the side bar, menus, minimap and canvas info, fits
# the whole graph into the page and returns the page area it fills.
SHOW = """
async (workflow) => {
  await app.loadGraphData(workflow);
  for (const id of ["Comfy.Minimap.Visible", "Comfy.Graph.CanvasInfo", "Comfy.Graph.CanvasMenu"]) {
    await app.extensionManager.setting.set(id, false);
  }
  await app.extensionManager.command.execute("Workspace.ToggleFocusMode");
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 300)));
  const nodes = app.graph.nodes, title = LiteGraph.NODE_TITLE_HEIGHT, margin = 40;
  const x0 = Math.min(...nodes.map((n) => n.pos[0])) - margin;
  const y0 = Math.min(...nodes.map((n) => n.pos[1] - title)) - margin;
  const x1 = Math.max(...nodes.map((n) => n.pos[0] + n.size[0])) + margin;
  const y1 = Math.max(...nodes.map((n) => n.pos[1] + n.size[1])) + margin;
  const rect = app.canvas.canvas.getBoundingClientRect();
  const scale = Math.min(rect.width / (x1 - x0), rect.height / (y1 - y0), 1.5);
  app.canvas.ds.scale = scale;
  app.canvas.ds.offset = [-x0, -y0];
  app.canvas.setDirty(true, true);
  return {x: rect.left, y: rect.top, width: scale * (x1 - x0), height: scale * (y1 - y0)};
}
"""


def write_thumbnail(png: bytes, path: Path) -> int:
    """Graph screenshot -> a JPEG of THUMBNAIL_SIZE (letterboxed in the canvas colour) under the byte limit."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.thumbnail(THUMBNAIL_SIZE, Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", THUMBNAIL_SIZE, image.getpixel((0, 0)))
    canvas.paste(image, ((THUMBNAIL_SIZE[0] - image.width) // 2, (THUMBNAIL_SIZE[1] - image.height) // 2))
    for quality in (85, 75, 65, 55):
        buffer = io.BytesIO()
        canvas.save(buffer, "JPEG", quality=quality, optimize=True)
        if buffer.tell() <= THUMBNAIL_MAX_BYTES:
            path.write_bytes(buffer.getvalue())
            return buffer.tell()
    raise RuntimeError(f"thumbnail {path.name} stays over {THUMBNAIL_MAX_BYTES} bytes")


def build_all(names: list[str], screenshots: Path | None) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        server = ComfyServer(ComfyInstall.from_env(), ServerDirs(Path(tmp)))
        server.start()
        try:
            # the example inputs the workflows load are in the input folder: the pack copies them there on import
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                for name in names:
                    spec = SPECS[name]()
                    assert spec.name == name, f"spec {name} builds a workflow named {spec.name}"
                    page = browser.new_page(viewport={"width": 1600, "height": 1000})
                    page.add_init_script("localStorage.setItem('vueNodesBannerDismissed', 'true')")
                    page.goto(server.url, wait_until="domcontentloaded")
                    page.wait_for_function(APP_READY, timeout=60_000)
                    workflow = page.evaluate(BUILD, asdict(spec))
                    workflow.setdefault("extra", {})["info"] = {"description": spec.description}
                    (WORKFLOWS / f"{name}.json").write_text(json.dumps(workflow, indent=1) + "\n")
                    area = page.evaluate(SHOW, workflow)
                    page.wait_for_timeout(800)  # images (LoadImage preview, editor canvas) draw a moment later
                    if screenshots:
                        page.screenshot(path=str(screenshots / f"{name}.png"))
                    size = write_thumbnail(page.screenshot(clip=area), WORKFLOWS / f"{name}.jpg")
                    print(f"{name}: {len(workflow['nodes'])} nodes, thumbnail {size} bytes")
                    page.close()
                browser.close()
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"workflows to build, of {', '.join(SPECS)} (default: all)")
    parser.add_argument("--screenshots", type=Path, help="also save full-page screenshots into this folder")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(SPECS)
    if unknown:
        parser.error(f"unknown workflow(s) {', '.join(sorted(unknown))}; known: {', '.join(SPECS)}")
    WORKFLOWS.mkdir(exist_ok=True)
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    build_all(args.names or list(SPECS), args.screenshots)


if __name__ == "__main__":
    main()
