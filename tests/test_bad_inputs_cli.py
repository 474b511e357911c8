"""Bad inputs through the command line (``python -m dreamdance_core``, issue 30): every case ends with exit status 2
and one ``error: ...`` line naming the problem, before any model work; no traceback. In-process through ``main``
(fast); a few through a subprocess, exactly as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dreamdance_core.__main__ import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_model_work(monkeypatch):
    """Any model work fails the test: every refusal must come before it."""
    from dreamdance_core import sources

    def forbidden(*args, **kwargs):
        raise AssertionError("model work started before the input was refused")

    monkeypatch.setattr(sources, "geometry_pipeline", forbidden)
    monkeypatch.setattr(sources, "video_pipeline", forbidden)
    monkeypatch.setenv("DREAMDANCE_MEMORY_LIMIT_GB", "4")


def _refused(capsys, argv, fragment):
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error")]  # (a library may warn on stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in err


NUMBERS = [
    (["--cfg", "nan", "nan", "nan"], "--cfg RGB is NaN"),
    (["--cfg", "3.5", "nan", "3.5"], "--cfg NORMAL is NaN"),
    (["--cfg", "3.5", "2.5", "inf"], "--cfg DEPTH is infinite"),
    (["--cfg", "1e30", "1", "1"], "at most 100"),
    (["--cfg", "-2", "1", "1"], "at least 0"),
    (["--min-cfg", "nan"], "--min-cfg is NaN"),
    (["--max-cfg", "nan"], "--max-cfg is NaN"),
    (["--max-cfg", "1e30"], "--max-cfg must be at most 100"),
    (["--min-cfg=-inf"], "--min-cfg is infinite"),
    (["--steps", "0"], "--steps must be at least 1"),
    (["--steps", "-5"], "--steps must be at least 1"),
    (["--steps", "100000"], "--steps must be at most"),
    (["--video-steps", "0"], "--video-steps must be at least 1"),
    (["--frames", "0"], "--frames must be at least 1"),
    (["--frames", "-1"], "--frames must be at least 1"),
    (["--frames", "1000000"], "--frames must be at most 100000"),
    (["--frames", "100000"], "would need about"),
    (["--width", "4096", "--height", "4096"], "would need about"),
    (["--width", "60"], "multiples of 8"),
    (["--height", "100"], "multiples of 8"),
    (["--width", "0"], "at least 8"),
    (["--width", "-64"], "at least 8"),
    (["--width", "65536"], "at most 16384"),
    (["--video-width", "30"], "multiples of 8"),
    (["--video-width", "4096", "--video-height", "4096", "--frames", "200"], "Stage 2 on 200 frames"),
    (["--fps", "0"], "--fps must be at least 1"),
    (["--fps", "100000"], "--fps must be at most 1024"),
    (["--seed", "-1"], "--seed must be at least 0"),
    (["--window", "0"], "--window must be at least 1"),
    (["--window", "4", "--overlap", "4"], "--overlap must be at most 3"),
    (["--overlap", "-1"], "--overlap must be at least 0"),
]


@pytest.mark.parametrize("args, fragment", NUMBERS, ids=[" ".join(a) for a, _ in NUMBERS])
def test_bad_numbers_are_one_error_line(no_model_work, capsys, tmp_path, args, fragment):
    _refused(capsys, [*args, "--output", str(tmp_path / "o")], fragment)


@pytest.mark.parametrize("device, fragment", [
    ("bogus", "is not a device"), ("cuda:x", "is not a device"), ("", "is not a device"),
    ("meta", "cpu, cuda or mps"),
])
def test_bad_devices(no_model_work, capsys, tmp_path, device, fragment):
    _refused(capsys, ["--device", device, "--output", str(tmp_path / "o")], fragment)


def test_cuda_without_a_gpu(no_model_work, capsys, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _refused(capsys, ["--device", "cuda", "--output", str(tmp_path / "o")], "no CUDA GPU is available")


def test_a_gpu_index_that_does_not_exist(no_model_work, capsys, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    _refused(capsys, ["--device", "cuda:3", "--output", str(tmp_path / "o")], "only 1 GPU")


PATHS = ["reference", "pose", "stage1", "base", "image-encoder", "stage2", "svd"]


@pytest.mark.parametrize("flag", PATHS)
def test_every_missing_path_is_reported_up_front(no_model_work, capsys, tmp_path, flag):
    _refused(capsys, [f"--{flag}", str(tmp_path / "missing"), "--output", str(tmp_path / "o")],
             f"--{flag} {tmp_path / 'missing'}: not found")


def test_a_missing_stage2_path_is_reported_before_stage1_runs(no_model_work, capsys, tmp_path):
    (tmp_path / "w1").mkdir()
    base = tmp_path / "sd.safetensors"
    base.write_bytes(b"x")
    _refused(capsys, ["--stage1", str(tmp_path / "w1"), "--base", str(base), "--stage2", str(tmp_path / "nope"),
                      "--output", str(tmp_path / "o")], "--stage2")


def test_weights_without_stage2_are_refused_before_stage1(no_model_work, capsys, tmp_path):
    (tmp_path / "w1").mkdir()
    _refused(capsys, ["--stage1", str(tmp_path / "w1"), "--output", str(tmp_path / "o")], "Stage 2 needs --stage2")


@pytest.mark.parametrize("flag, make, fragment", [
    ("stage1", "file", "is a file"), ("stage2", "file", "is a file"), ("reference", "dir", "is a folder"),
])
def test_paths_of_the_wrong_kind(no_model_work, capsys, tmp_path, flag, make, fragment):
    path = tmp_path / "thing"
    path.mkdir() if make == "dir" else path.write_text("x")
    _refused(capsys, [f"--{flag}", str(path), "--output", str(tmp_path / "o")], fragment)


def test_output_naming_a_file(no_model_work, capsys, tmp_path):
    (tmp_path / "out").write_text("x")
    _refused(capsys, ["--output", str(tmp_path / "out")], "--output")


def test_output_under_a_file(no_model_work, capsys, tmp_path):
    (tmp_path / "out").write_text("x")
    _refused(capsys, ["--output", str(tmp_path / "out" / "sub")], "is a file")


@pytest.mark.parametrize("content, fragment", [
    ("{not json", "not valid JSON"), ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    (json.dumps([{"people": [None]}]), "a person must be a JSON object"),
    (json.dumps([{"people": [], "canvas_width": True, "canvas_height": True}]), "numbers of pixels"),
    (json.dumps([1, 2]), "a frame must be a JSON object"), (json.dumps([]), "non-empty list"),
])
def test_bad_pose_files(no_model_work, capsys, tmp_path, content, fragment):
    pose = tmp_path / "pose.json"
    pose.write_text(content)
    _refused(capsys, ["--pose", str(pose), "--output", str(tmp_path / "o")], fragment)


def test_long_pose_file_is_refused_by_the_memory_estimate(no_model_work, capsys, tmp_path):
    from dreamdance_core.pose import sample_dance, write_pose_file

    pose = write_pose_file(sample_dance(1, 64, 96).frames([0] * 20_000), tmp_path / "long.json")
    _refused(capsys, ["--pose", str(pose), "--width", "512", "--height", "768", "--output", str(tmp_path / "o")],
             "Stage 1 on 20000 frames at 512x768 would need")


@pytest.mark.parametrize("kind, fragment", [("garbage", "not a readable image"), ("empty", "not a readable image")])
def test_bad_reference_images(no_model_work, capsys, tmp_path, monkeypatch, kind, fragment):
    from dreamdance_core import __main__ as cli

    reference = tmp_path / "ref.png"
    reference.write_bytes(b"garbage" if kind == "garbage" else b"")
    # the reference is read after the pipelines are built: let the stubs pass and fail on the image
    monkeypatch.setattr(cli, "_check_work", lambda *a, **k: None)
    from dreamdance_core import sources

    class Stub:  # a pipeline's interface as the CLI uses it before reading the reference
        def to(self, **kwargs):
            return self

        def modules(self):
            return []

    monkeypatch.setattr(sources, "geometry_pipeline", lambda *a, **k: Stub())
    _refused(capsys, ["--reference", str(reference), "--frames", "1", "--output", str(tmp_path / "o")], fragment)


@pytest.mark.parametrize("args", [["--frames", "abc"], ["--cfg", "1", "2"], ["--weighting", "cubic"], ["--bogus"],
                                  ["--fit", "zoom"], ["--scheduler", "heun"]])
def test_argparse_refusals_exit_2_without_traceback(capsys, args):
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


# --- through a subprocess, as a user runs it ------------------------------------------------------------------------
@pytest.mark.parametrize("args, fragment", [
    (["--cfg", "nan", "nan", "nan"], "--cfg RGB is NaN"), (["--device", "bogus"], "is not a device"),
    (["--steps", "0"], "--steps must be at least 1"),
])
def test_subprocess_refusals(tmp_path, args, fragment):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "dreamdance_core", *args, "--output", str(tmp_path / "o")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert fragment in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()
