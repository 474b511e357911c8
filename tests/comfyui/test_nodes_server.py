"""The pack's nodes inside a real ComfyUI behave like well-kept node packs: bad inputs are refused with ComfyUI's
validation error or our clear message, progress reaches the frontend's websocket, and a cancel stops sampling."""

from __future__ import annotations

import base64
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest

from scripts.comfyui_harness import ComfyServer, PromptFailed, PromptRejected

W, H = 64, 96
SAMPLER = "3"  # the sampling node in the prompts below


def geometry_prompt(steps: int = 1, frames: int = 2, **geometry: Any) -> dict[str, Any]:
    """Tiny Stage 1: empty reference image + sample dance -> PoseToGeometry -> PreviewImage of the depth."""
    inputs = {"geometry_model": ["2", 0], "reference": ["1", 0], "pose_keypoint": ["4", 0], "width": W, "height": H,
              "steps": steps, "seed": 0, "cfg_rgb": 3.5, "cfg_normal": 2.5, "cfg_depth": 3.5}
    inputs.update(geometry)
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": W, "height": H, "batch_size": 1, "color": 0x808080}},
        "2": {"class_type": "DreamDanceGeometryModelLoader", "inputs": {
            "stage1_weights": "(tiny random demo)", "base_checkpoint": "(none)", "clip_vision": "(none)",
            "precision": "fp32", "keep_loaded": False}},
        SAMPLER: {"class_type": "DreamDancePoseToGeometry",
                  "inputs": {name: value for name, value in inputs.items() if value is not None}},
        "4": {"class_type": "DreamDanceSamplePose", "inputs": {"num_frames": frames, "width": W, "height": H}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": [SAMPLER, 0]}},
    }


def animate_prompt(steps: int = 1, frames: int = 2) -> dict[str, Any]:
    """Tiny Stage 2 from rendered poses only: empty reference + sample dance -> Animate -> PreviewImage."""
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": W, "height": H, "batch_size": 1, "color": 0x808080}},
        "2": {"class_type": "DreamDanceVideoModelLoader", "inputs": {
            "stage2_weights": "(tiny random demo)", "svd_checkpoint": "(none)", "precision": "fp32",
            "keep_loaded": False}},
        SAMPLER: {"class_type": "DreamDanceAnimate", "inputs": {
            "video_model": ["2", 0], "reference": ["1", 0], "pose_images": ["5", 0], "width": W, "height": H,
            "steps": steps, "seed": 0, "min_cfg": 1.0, "max_cfg": 3.0, "fps": 7, "motion_bucket_id": 127,
            "noise_aug_strength": 0.02, "strength": 1.0, "pose_strength": 1.0, "depth_strength": 1.0,
            "normal_strength": 1.0, "decode_chunk_size": 8}},
        "4": {"class_type": "DreamDanceSamplePose", "inputs": {"num_frames": frames, "width": W, "height": H}},
        "5": {"class_type": "DreamDanceRenderPose", "inputs": {
            "pose": ["4", 0], "width": 0, "height": 0, "fit": "stretch", "draw_body": True, "draw_hands": True,
            "draw_face": True, "confidence_threshold": 0.0}},
        "6": {"class_type": "PreviewImage", "inputs": {"images": [SAMPLER, 0]}},
    }


def execution_error(failure: PromptFailed) -> dict[str, Any]:
    (error,) = [data for kind, data in failure.entry["status"]["messages"] if kind == "execution_error"]
    return error


def test_out_of_range_steps_get_comfyuis_validation_error(comfy_server: ComfyServer):
    with pytest.raises(PromptRejected) as rejected:
        comfy_server.run_prompt(geometry_prompt(steps=0))
    assert rejected.value.status == 400
    (error,) = rejected.value.body["node_errors"][SAMPLER]["errors"]
    assert (error["type"], error["details"]) == ("value_smaller_than_min", "steps")


def test_missing_pose_names_the_inputs_to_connect(comfy_server: ComfyServer):
    """Refused when queued (the V3 node's connection rule, nodes/_v3.py), before the model loads."""
    with pytest.raises(PromptRejected) as rejected:
        comfy_server.run_prompt(geometry_prompt(pose_keypoint=None))
    assert rejected.value.status == 400
    errors = rejected.value.body["node_errors"][SAMPLER]["errors"]
    assert {error["type"] for error in errors} == {"custom_validation_failed"}
    assert all("connect exactly one pose input: pose_keypoint" in error["details"] for error in errors), errors


def test_size_not_a_multiple_of_8_is_refused_clearly(comfy_server: ComfyServer):
    with pytest.raises(PromptFailed) as failed:
        comfy_server.run_prompt(geometry_prompt(width=100))
    message = execution_error(failed.value)["exception_message"]
    assert "is 100x96 (W x H); both sides must be multiples of 8" in message and "96x96" in message  # names the fix


class ComfySocket:
    """A minimal websocket client (RFC 6455, standard library only) for ComfyUI's ``/ws``: reads its JSON messages.

    The server never masks its frames; binary frames (previews) and control frames are skipped.
    """

    def __init__(self, url: str, client_id: str, timeout: float = 30.0):
        address = urlparse(url)
        self.sock = socket.create_connection((address.hostname, address.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /ws?clientId={client_id} HTTP/1.1\r\nHost: {address.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._receive()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(f"websocket upgrade refused: {head[:200]!r}")

    def _receive(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the websocket")
        return chunk

    def _read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self.buffer += self._receive()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def messages(self) -> Iterator[dict[str, Any]]:
        while True:
            first, second = self._read(2)
            size = second & 0x7F
            if size >= 126:
                size = int.from_bytes(self._read(2 if size == 126 else 8), "big")
            payload = self._read(size)
            if first & 0x0F == 1:  # a text frame
                yield json.loads(payload)

    def close(self) -> None:
        self.sock.close()


def wait_for_history(server: ComfyServer, prompt_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = server.get(f"/history/{prompt_id}").get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None:
            return entry
        time.sleep(0.05)
    raise TimeoutError(f"prompt {prompt_id} still not finished after {timeout} s")


@pytest.mark.parametrize("make_prompt", [geometry_prompt, animate_prompt], ids=["stage1", "stage2"])
def test_progress_reaches_the_websocket_and_cancel_stops_sampling(comfy_server: ComfyServer, make_prompt):
    """A long run reports step-by-step progress of the sampling node; POST /interrupt during sampling ends the prompt
    as interrupted, long before its last step."""
    steps, client_id = 200, uuid.uuid4().hex
    socket_ = ComfySocket(comfy_server.url, client_id)
    try:
        status, body = comfy_server.post("/prompt", {"prompt": make_prompt(steps=steps), "client_id": client_id})
        assert status == 200, body
        progress = []
        for message in socket_.messages():
            data = message.get("data", {})
            if message["type"] == "progress" and data.get("node") == SAMPLER:
                progress.append((data["value"], data["max"]))
                if data["value"] >= 2:  # sampling is under way
                    break
            assert message["type"] != "execution_error", message
        started = time.monotonic()
        comfy_server.interrupt()
        entry = wait_for_history(comfy_server, body["prompt_id"])
        print(f"interrupted {time.monotonic() - started:.2f} s after POST /interrupt")
    finally:
        socket_.close()
    assert progress[0] == (1, steps)
    kinds = [kind for kind, _ in entry["status"]["messages"]]
    assert entry["status"]["status_str"] == "error" and kinds[-1] == "execution_interrupted"
    last = comfy_server.get("/history")  # the server is free again: nothing left running
    assert body["prompt_id"] in last and comfy_server.get("/queue")["queue_running"] == []
