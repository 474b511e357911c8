"""The paper's estimators (DWPose, Depth Anything, Marigold normals) through the registry's specs, each run by its real
library on a tiny random model the test builds in that library's real layout (no weights are downloaded)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dreamdance_core.estimators import PrepareError, VideoFrames, resolve_model
from dreamdance_core.modalities import estimator

F, H, W = 2, 96, 64


def video(tmp_path: Path) -> VideoFrames:
    frames = np.random.default_rng(0).integers(0, 256, (F, H, W, 3), dtype=np.uint8)
    return VideoFrames(tmp_path / "clip.mp4", frames, np.arange(F), 25.0)


# --- Depth Anything through transformers ----------------------------------------------------------------------------


def tiny_depth_anything(folder: Path) -> Path:
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, DPTImageProcessor

    torch.manual_seed(0)
    backbone = {"model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2,
                "intermediate_size": 64, "patch_size": 14, "image_size": 56, "reshape_hidden_states": False,
                "out_features": ["stage1", "stage2", "stage3", "stage4"]}
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, patch_size=14,
                                 neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16, head_hidden_size=8)
    DepthAnythingForDepthEstimation(config).eval().save_pretrained(folder)
    DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14,
                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)
    return folder


def test_depth_anything_spec_runs_the_transformers_model(tmp_path):
    from PIL import Image
    from transformers import AutoImageProcessor, DepthAnythingForDepthEstimation

    folder = tiny_depth_anything(tmp_path / "depth-anything")
    clip = video(tmp_path)
    depth = estimator("depth", f"depth-anything:{folder}")(clip)
    assert depth.shape == (F, H, W) and depth.dtype == np.float32
    assert np.allclose(depth.min(axis=(1, 2)), 0.0) and np.allclose(depth.max(axis=(1, 2)), 1.0)
    # the same numbers as the model run by hand on frame 1, normalised the documented way
    processor = AutoImageProcessor.from_pretrained(folder)
    model = DepthAnythingForDepthEstimation.from_pretrained(folder).eval()
    with torch.no_grad():
        raw = model(**processor(images=[Image.fromarray(clip.frames[1])], return_tensors="pt")).predicted_depth[0]
    import cv2

    near = cv2.resize(raw.numpy(), (W, H), interpolation=cv2.INTER_LINEAR)
    assert np.allclose(depth[1], (near - near.min()) / (near.max() - near.min()), atol=1e-5)


# --- Marigold normals through diffusers -----------------------------------------------------------------------------


def tiny_clip_tokenizer(folder: Path):
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=8)


def tiny_marigold(folder: Path) -> Path:
    from diffusers import AutoencoderKL, DDIMScheduler, MarigoldNormalsPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=8, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8,
    )
    vae = AutoencoderKL(block_out_channels=(16, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=514, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, max_position_embeddings=8, bos_token_id=512,
                                        eos_token_id=513, pad_token_id=513))
    scheduler = DDIMScheduler(prediction_type="v_prediction", timestep_spacing="trailing", set_alpha_to_one=False,
                              beta_schedule="scaled_linear", clip_sample=False)
    tokenizer = tiny_clip_tokenizer(folder.parent / "tokenizer-source")
    pipe = MarigoldNormalsPipeline(unet.eval(), vae.eval(), scheduler, text.eval(), tokenizer,
                                   prediction_type="normals", default_denoising_steps=2,
                                   default_processing_resolution=32)
    pipe.save_pretrained(folder)
    return folder


def test_marigold_spec_runs_the_diffusers_pipeline(tmp_path):
    from diffusers import MarigoldNormalsPipeline

    folder = tiny_marigold(tmp_path / "marigold")
    clip = video(tmp_path)
    depth = np.ones((F, H, W), np.float32)
    normals = estimator("normal", f"marigold:{folder}", {"marigold_ensemble": 1})(clip, depth)
    assert normals.shape == (F, H, W, 3) and normals.dtype == np.float32
    assert np.allclose(np.linalg.norm(normals, axis=-1), 1.0, atol=1e-4)
    # the pipeline itself on frame 0 (same seed, default steps and resolution) gives the same directions
    pipe = MarigoldNormalsPipeline.from_pretrained(folder)
    image = torch.from_numpy(clip.frames[0]).permute(2, 0, 1)[None].float() / 255.0
    direct = pipe(image, generator=torch.Generator().manual_seed(0), output_type="np").prediction[0]
    direct = direct / np.linalg.norm(direct, axis=-1, keepdims=True)
    assert np.allclose(normals[0], direct, atol=1e-4)
    assert not np.allclose(normals[0], normals[1])  # each frame is estimated from its own pixels


# --- DWPose through rtmlib on onnxruntime ---------------------------------------------------------------------------

DET = 64  # detector input (square, like DWPose's 640x640 YOLOX-L)
POSE_W, POSE_H = 48, 64  # pose input (DWPose: 288x384)
K = 133  # COCO-WholeBody keypoints
LOW = range(91, 112)  # COCO-WholeBody left hand: peaks under the threshold -> a missing part
BOX = (8.0, 12.0, 40.0, 60.0)  # the detector's one person, in detector-input pixels (xyxy)


def onnx_detector(path: Path, person: bool = True) -> None:
    """YOLOX's real I/O ('input' [1,3,64,64] -> 'output' [1, anchors, 85], no NMS inside), one person at BOX (or,
    ``person=False``, nobody)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    anchors = sum((DET // s) ** 2 for s in (8, 16, 32))
    table = np.full((1, anchors, 85), -20.0, np.float32)
    table[..., 4:] = 0.0  # objectness and class scores 0
    x0, y0, x1, y1 = BOX  # anchor 0: stride 8, grid cell (0, 0)
    table[0, 0, :4] = [(x0 + x1) / 2 / 8, (y0 + y1) / 2 / 8, math.log((x1 - x0) / 8), math.log((y1 - y0) / 8)]
    table[0, 0, 4], table[0, 0, 5] = (0.95, 0.95) if person else (0.0, 0.0)  # objectness x person score
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["mean"], keepdims=1),  # [1, 1, 1, 1]
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Reshape", ["nothing", "shape1"], ["flat"]),
        helper.make_node("Add", ["table", "flat"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes, "yolox_tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, DET, DET])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, anchors, 85])],
        [numpy_helper.from_array(table, "table"), numpy_helper.from_array(np.zeros((), np.float32), "zero"),
         numpy_helper.from_array(np.array([1, 1, 1], np.int64), "shape1")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)


def peaks() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per keypoint the SimCC bins of its maxima (x, y) and its score."""
    k = np.arange(K)
    x_bins, y_bins = (k * 7) % (2 * POSE_W), (k * 11) % (2 * POSE_H)
    score = np.where(np.isin(k, LOW), 0.1, 0.9)
    return x_bins, y_bins, score


def onnx_simcc_pose(path: Path) -> None:
    """DWPose's real I/O ('input' [1,3,64,48] -> 'simcc_x' [1,133,96], 'simcc_y' [1,133,128]): a random linear head
    over the pooled image plus peaked biases, so every keypoint has a known maximum."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    x_bins, y_bins, score = peaks()
    outputs = []
    initialisers = [numpy_helper.from_array(np.array([1, 3], np.int64), "flat_shape")]
    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
             helper.make_node("Reshape", ["pooled", "flat_shape"], ["features"])]
    for axis, bins, where in (("x", 2 * POSE_W, x_bins), ("y", 2 * POSE_H, y_bins)):
        bias = np.zeros((K, bins), np.float32)
        bias[np.arange(K), where] = score
        weight = (rng.standard_normal((3, K * bins)) * 1e-4).astype(np.float32)
        initialisers += [numpy_helper.from_array(weight, f"w_{axis}"),
                         numpy_helper.from_array(bias.reshape(1, -1), f"b_{axis}"),
                         numpy_helper.from_array(np.array([1, K, bins], np.int64), f"shape_{axis}")]
        nodes += [helper.make_node("MatMul", ["features", f"w_{axis}"], [f"mm_{axis}"]),
                  helper.make_node("Add", [f"mm_{axis}", f"b_{axis}"], [f"sum_{axis}"]),
                  helper.make_node("Reshape", [f"sum_{axis}", f"shape_{axis}"], [f"simcc_{axis}"])]
        outputs.append(helper.make_tensor_value_info(f"simcc_{axis}", TensorProto.FLOAT, [1, K, bins]))
    graph = helper.make_graph(
        nodes, "dwpose_tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, POSE_H, POSE_W])],
        outputs, initialisers,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)


def expected_pixels(frame_w: int, frame_h: int) -> np.ndarray:
    """Where each COCO-WholeBody keypoint lands in the frame: DWPose's top-down decoding written out independently."""
    ratio = min(DET / frame_h, DET / frame_w)  # the detector's letterbox
    x0, y0, x1, y1 = (v / ratio for v in BOX)
    center = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    scale = np.array([x1 - x0, y1 - y0]) * 1.25
    aspect = POSE_W / POSE_H
    scale = np.array([scale[0], scale[0] / aspect]) if scale[0] > scale[1] * aspect else np.array(
        [scale[1] * aspect, scale[1]])
    x_bins, y_bins, _ = peaks()
    locations = np.stack([x_bins, y_bins], axis=1) / 2.0
    return locations / np.array([POSE_W, POSE_H]) * scale + center - scale / 2


def test_dwpose_spec_runs_rtmlib_on_onnx_models(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("rtmlib")
    folder = tmp_path / "dwpose"
    folder.mkdir()
    onnx_detector(folder / "yolox_l.onnx")
    onnx_simcc_pose(folder / "dw-ll_ucoco_384.onnx")
    clip = video(tmp_path)
    frames = estimator("pose", f"dwpose:{folder}", {"pose_threshold": 0.3})(clip)
    assert len(frames) == F
    expected = expected_pixels(W, H)
    for frame in frames:
        assert (frame["canvas_width"], frame["canvas_height"]) == (W, H)
        (person,) = frame["people"]
        body = np.asarray(person["pose_keypoints_2d"]).reshape(18, 3)
        # OpenPose-18 from COCO: nose = 0, right shoulder (2) = COCO 6, left wrist (7) = COCO 9, neck = shoulders' mean
        assert np.allclose(body[0, :2], expected[0], atol=1e-3)
        assert np.allclose(body[2, :2], expected[6], atol=1e-3)
        assert np.allclose(body[7, :2], expected[9], atol=1e-3)
        assert np.allclose(body[1, :2], expected[[5, 6]].mean(axis=0), atol=1e-3)
        assert np.allclose(body[:, 2], 0.9, atol=1e-3)
        face = np.asarray(person["face_keypoints_2d"]).reshape(70, 3)
        assert np.allclose(face[0, :2], expected[23], atol=1e-3)  # COCO-WholeBody face starts at 23
        right = np.asarray(person["hand_right_keypoints_2d"]).reshape(21, 3)
        assert np.allclose(right[0, :2], expected[112], atol=1e-3)
        assert person["hand_left_keypoints_2d"] is None  # every point under the threshold: the part is missing


def test_dwpose_frames_without_a_person_have_no_people(tmp_path):
    pytest.importorskip("rtmlib")
    folder = tmp_path / "dwpose"
    folder.mkdir()
    onnx_detector(folder / "yolox_l.onnx", person=False)
    onnx_simcc_pose(folder / "dw-ll_ucoco_384.onnx")
    frames = estimator("pose", f"dwpose:{folder}")(video(tmp_path))
    assert [frame["people"] for frame in frames] == [[], []]


def test_prepare_data_with_the_paper_estimators_writes_a_valid_dataset(tmp_path):
    """Videos -> dataset through the command line with all three paper estimators, then validated and read."""
    pytest.importorskip("rtmlib")
    import cv2

    from dreamdance_core.dataset import ClipDataset, validate_dataset
    from dreamdance_core.training.prepare_data import cli

    models = tmp_path / "models"
    (models / "dwpose").mkdir(parents=True)
    onnx_detector(models / "dwpose" / "yolox_l.onnx")
    onnx_simcc_pose(models / "dwpose" / "dw-ll_ucoco_384.onnx")
    tiny_depth_anything(models / "depth-anything")
    tiny_marigold(models / "marigold")
    videos = tmp_path / "videos"
    videos.mkdir()
    writer = cv2.VideoWriter(str(videos / "dance.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    for frame in video(tmp_path).frames:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    out = tmp_path / "dataset"
    assert cli(["convert", str(videos), str(out), "--estimator", f"pose=dwpose:{models / 'dwpose'}",
                "--estimator", f"depth=depth-anything:{models / 'depth-anything'}",
                "--estimator", f"normal=marigold:{models / 'marigold'}"]) == 0
    report = validate_dataset(out)
    assert report.ok, report.summary()
    item = ClipDataset(out, num_frames=F)[0]
    assert item["pixel_values"].shape == (F, 3, H, W)
    np.testing.assert_allclose(item["pose"][0, 0, :2].numpy(), expected_pixels(W, H)[0], atol=0.5)


def test_missing_model_folder_names_it_and_downloads_nothing(tmp_path, monkeypatch):
    import huggingface_hub

    def forbidden(*args, **kwargs):
        raise AssertionError("no download may start without --allow_download")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", forbidden)
    with pytest.raises(PrepareError, match="does not exist.*allow_download"):
        estimator("normal", f"marigold:{tmp_path / 'nowhere'}")
    pinned = "prs-eth/marigold-normals-v1-1@" + "0" * 40
    with pytest.raises(PrepareError, match="pass --allow_download"):
        resolve_model(pinned, "marigold")
    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo, revision: calls.append((repo, revision))
                        or str(tmp_path))
    assert resolve_model(pinned, "marigold", allow_download=True) == tmp_path
    assert calls == [("prs-eth/marigold-normals-v1-1", "0" * 40)]
