"""(Re)make the example inputs the shipped workflows load (``example_inputs/``), from the project's synthetic code.

    .venv/bin/python -m scripts.make_example_inputs

The pack copies these files into ComfyUI's input folder when it is imported, where they are missing
(``nodes/_example_inputs.py``), so every shipped workflow runs as shipped; a user swaps in their own file with the
Load Image / Load Video upload button. They are small on purpose (about 50 KB together): a synthetic mannequin as the
reference image, a short synthetic dance as pose/depth/normal maps at the demo checkpoints' 64x96, and a short
driving video of rendered OpenPose skeletons (lossless VP9, so DreamDance Pose from Image reads the joints back
exactly). Deterministic: the same code writes the same pixels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dreamdance_core.dataset import depth_to_unit
from dreamdance_core.pose import PoseSequence, RenderStyle, render_poses, sample_dance, to_pose_keypoint
from dreamdance_core.synthetic.generate import render_sample

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_INPUTS = REPO_ROOT / "example_inputs"
REFERENCE_IMAGE = "dreamdance_reference.png"
MAP_FILES = {name: f"dreamdance_{name}.webp" for name in ("pose", "depth", "normal")}  # stage2_external_geometry
DRIVING_VIDEO = "dreamdance_driving_pose.webm"  # driving_video
MANNEQUIN = (1, 2, 3)  # character, motion and scene seeds of the synthetic example person
MAP_FRAMES, MAP_SIZE = 8, (64, 96)  # the demo checkpoints' size
DRIVING_FRAMES, DRIVING_SIZE, DRIVING_FPS = 8, (144, 192), 8
MAP_FPS = 8.0


def reference_image() -> np.ndarray:
    """The synthetic mannequin the workflows are shown and tested with: ``uint8 [384, 256, 3]``."""
    return render_sample(*MANNEQUIN, num_frames=1).reference.rgb[0]


def reference_pose() -> PoseSequence:
    """The body pose of the mannequin in :func:`reference_image` (256x384 canvas, pixels, 0.1 px)."""
    frames = render_sample(*MANNEQUIN, num_frames=1).reference
    seq = PoseSequence.empty(1, 1, (frames.width, frames.height))
    seq.body[0, 0] = frames.keypoints[0]
    seq.body[..., :2] = seq.body[..., :2].round(1)
    return seq


def reference_pose_json() -> str:
    """:func:`reference_pose` as POSE_KEYPOINT JSON text (what a Load Pose node holds)."""
    return json.dumps(to_pose_keypoint(reference_pose()), separators=(",", ":"))


def example_maps(num_frames: int, width: int, height: int) -> dict[str, np.ndarray]:
    """Pose, depth and normal maps ``uint8 [F, H, W, 3]`` of a synthetic dance, standing in for maps that another
    estimator made (what ``stage2_external_geometry`` loads)."""
    clip = render_sample(*MANNEQUIN, num_frames=num_frames, width=width, height=height).clip
    poses = PoseSequence.empty(num_frames, 1, (width, height))
    poses.body[:, 0] = clip.keypoints
    depth = np.repeat(depth_to_unit(clip.depth, clip.mask)[..., None], 3, axis=-1)
    return {
        "pose": render_poses(poses),
        "depth": (depth * 255).round().astype(np.uint8),
        "normal": np.where(clip.mask[..., None], (clip.normal + 1) * 127.5, 0).round().astype(np.uint8),
    }


def driving_poses() -> PoseSequence:
    """The driving motion: one loop of the sample dance in ``DRIVING_FRAMES`` frames, body only, by a smaller person
    standing left of centre on a ``DRIVING_SIZE`` canvas (so Retarget visibly moves and scales it)."""
    width, height = DRIVING_SIZE
    stride = 24 // DRIVING_FRAMES  # the dance loops every 24 frames
    seq = sample_dance(24, width, height).frames(list(range(0, 24, stride))[:DRIVING_FRAMES])
    seq.face[:] = 0.0
    seq.hands[:] = 0.0
    centre = np.array([width / 2, height / 2])
    seq.body[..., :2] = (seq.body[..., :2] - centre) * 0.75 + centre + [-0.12 * width, 0.08 * height]
    return seq


def driving_frames() -> np.ndarray:
    """:func:`driving_poses` drawn as body-only OpenPose maps: ``uint8 [F, H, W, 3]``."""
    return render_poses(driving_poses(), style=RenderStyle(hands=False, face=False))


def write_animated_webp(frames: np.ndarray, path: Path, fps: float = MAP_FPS) -> None:
    """``uint8 [F, H, W, 3]`` -> a lossless animated WEBP (Load Image reads every frame of it as one batch)."""
    from PIL import Image

    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], lossless=True, duration=round(1000 / fps))


ENCODE_WEBM = """
import sys, av, numpy as np
frames, path, fps = np.load(sys.argv[1]), sys.argv[2], int(sys.argv[3])
with av.open(path, "w", format="webm") as out:
    stream = out.add_stream("libvpx-vp9", rate=fps, options={"lossless": "1"})
    stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "gbrp"
    for frame in frames:
        out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
    out.mux(stream.encode())
"""


def write_lossless_webm(frames: np.ndarray, path: Path, fps: int) -> None:
    """``uint8 [F, H, W, 3]`` -> a lossless VP9 WEBM in RGB (``gbrp``): decoded to RGB it gives the exact pixels back,
    and browsers play it (Load Video's preview). Encoded with PyAV by ComfyUI's interpreter (PyAV comes with ComfyUI;
    the project's environment does not need it)."""
    import subprocess
    import tempfile

    from scripts.comfyui_harness import ComfyInstall

    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "frames.npy", frames)
        subprocess.run([str(ComfyInstall.from_env().python), "-c", ENCODE_WEBM, str(Path(tmp) / "frames.npy"),
                        str(path), str(fps)], check=True)


def write_example_inputs(folder: Path = EXAMPLE_INPUTS) -> dict[str, int]:
    """Write every example input into ``folder``; returns ``{file name: bytes}``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(reference_image()).save(folder / REFERENCE_IMAGE, optimize=True)
    for name, frames in example_maps(MAP_FRAMES, *MAP_SIZE).items():
        write_animated_webp(frames, folder / MAP_FILES[name])
    write_lossless_webm(driving_frames(), folder / DRIVING_VIDEO, DRIVING_FPS)
    names = [REFERENCE_IMAGE, *MAP_FILES.values(), DRIVING_VIDEO]
    return {name: (folder / name).stat().st_size for name in names}


def main() -> None:
    sizes = write_example_inputs()
    for name, size in sizes.items():
        print(f"{name}: {size} bytes")
    print(f"total: {sum(sizes.values())} bytes in {EXAMPLE_INPUTS}")


if __name__ == "__main__":
    main()
