"""Memory and time of the single-file SVD loader (printed; never asserted).

Writes, into a temporary folder, an SVD single file in the original ``sgm`` layout (what ``svd_xt_1_1.safetensors``
holds: UNet, VAE, the OpenCLIP ViT-H image encoder, plus the parts the loader skips - the conditioner's VAE-encoder
copy and the OpenCLIP text remnants) with random fp16 weights of the real SVD-XT 1.1 architecture (the configs shipped
in ``dreamdance_core/configs/svd``; ~4.6 GB on disk). Also writes a full-size SD1.5 single file (LDM layout, ~2.1 GB),
the wrong file to refuse. Files are streamed tensor by tensor, so writing them needs little memory.

Then, each in a fresh subprocess: ``load_svd_single_file`` in float16 and in float32, followed by a sum over every
weight (safetensors 0.8 maps the file copy-on-write and hands out tensors that view it, so a float16 load reads pages
only when a weight is first used: the sum makes every case read the whole model), and the refusal of the SD1.5 file.
Each reports seconds (load + sum), peak RSS (``ru_maxrss``: the mapped file pages a process touched count in it; the
kernel can drop them, as from any cache) and the peak of anonymous memory (RssAnon sampled every 20 ms: what the
process allocated itself, e.g. float32 copies), beside a bare start-up (imports only). The files were just written,
so they are read from the page cache: the seconds are not disk speed.

``--scale 0.5`` halves every width (about a quarter of the parameters, ~1.2 GB file) for machines with less disk or
memory; ``--keep DIR`` writes the files there and keeps them.

``--code DIR`` measures the loader of another checkout on the same files (e.g. ``git worktree add /tmp/old <commit>``).

Usage (from the repository root): ``python -m bench.bench_load_memory [--scale 1|0.5] [--dtypes float16,float32]
[--keep DIR] [--code DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAFETENSORS_DTYPES = {"float16": "F16", "float32": "F32", "int64": "I64"}


# ---------------------------------------------------------------------------------------------- writing the files


def write_streamed(path: Path, shapes: dict[str, tuple[int, ...]], seed: int = 0) -> int:
    """A safetensors file of random fp16 tensors (std 0.02) with these names and shapes, one tensor in memory at once.

    The format (safetensors' spec): 8-byte little-endian header length, JSON header, then the raw tensors in order.
    """
    import torch

    header, offset = {}, 0
    for name, shape in shapes.items():
        size = 2 * int(torch.Size(shape).numel())
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = {"format": "pt", "written_by": "bench/bench_load_memory.py"}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    generator = torch.Generator().manual_seed(seed)
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", len(encoded)) + encoded)
        for shape in shapes.values():
            tensor = torch.empty(shape, dtype=torch.float32).normal_(0.0, 0.02, generator=generator).half()
            file.write(tensor.numpy().tobytes())
    return path.stat().st_size


def scaled_svd_configs(scale: float, folder: Path) -> Path:
    """The shipped SVD configs with every width multiplied by ``scale`` (GroupNorm's 32 groups need 1 or 0.5)."""
    from dreamdance_core.loading.svd import SVD_CONFIG_DIR

    shutil.copytree(SVD_CONFIG_DIR, folder)
    if scale == 1:
        return folder

    def edit(name: str, change) -> None:
        path = folder / name / "config.json"
        path.write_text(json.dumps(change(json.loads(path.read_text())), indent=1))

    width = lambda values: [int(v * scale) for v in values]  # noqa: E731
    edit("unet", lambda c: {**c, "block_out_channels": width(c["block_out_channels"]),
                            "cross_attention_dim": int(c["cross_attention_dim"] * scale)})
    edit("vae", lambda c: {**c, "block_out_channels": width(c["block_out_channels"])})
    edit("image_encoder", lambda c: {**c, "hidden_size": int(c["hidden_size"] * scale),
                                     "intermediate_size": int(c["intermediate_size"] * scale),
                                     "projection_dim": int(c["projection_dim"] * scale)})
    return folder


def svd_shapes(config_dir: Path) -> dict[str, tuple[int, ...]]:
    """Names and shapes of an ``svd_xt_1_1.safetensors``-style file for these configs (weightless models)."""
    from dreamdance_core.loading.svd import VAE_PREFIX, build_svd_models, svd_single_file_state_dict
    from dreamdance_core.weights import build_empty

    components = build_empty(lambda: build_svd_models(config_dir))
    shapes = {name: tuple(t.shape) for name, t in svd_single_file_state_dict(components).items()}
    # what the real file also holds and the loader never reads: the conditioner's copy of the VAE encoder and the
    # OpenCLIP text remnants (sgm's FrozenOpenCLIPImageEmbedder deletes only the text transformer)
    for name, shape in list(shapes.items()):
        if name.startswith(VAE_PREFIX + "encoder."):
            shapes["conditioner.embedders.3.encoder." + name[len(VAE_PREFIX):]] = shape
    width = components.image_encoder.config.projection_dim
    text = "conditioner.embedders.0.open_clip.model."
    shapes.update({text + "token_embedding.weight": (49408, width), text + "positional_embedding": (77, width),
                   text + "ln_final.weight": (width,), text + "ln_final.bias": (width,),
                   text + "text_projection": (width, width), text + "logit_scale": ()})
    return shapes


def sd15_shapes() -> dict[str, tuple[int, ...]]:
    """Names and shapes of a full-size SD1.5 single file (UNet and VAE in the LDM layout), the wrong file."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from dreamdance_core.loading.sd15 import SD15_CONFIGS
    from dreamdance_core.loading.sd15_layout import unet_to_ldm, vae_to_ldm
    from dreamdance_core.weights import build_empty

    config = UNet2DConditionModel.load_config(SD15_CONFIGS / "unet")
    unet = build_empty(lambda: UNet2DConditionModel.from_config(config))
    vae = build_empty(lambda: AutoencoderKL.from_config(AutoencoderKL.load_config(SD15_CONFIGS / "vae")))
    return {name: tuple(t.shape) for name, t in {**unet_to_ldm(unet), **vae_to_ldm(vae)}.items()}


# ------------------------------------------------------------------------------------------ measuring (subprocess)


def _rss_anon_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def measure(case: dict) -> dict:
    """Runs inside the subprocess (whose PYTHONPATH picks the checkout): one load (or refusal), its time and peak
    memory."""
    import torch

    from dreamdance_core.loading import WeightFileError  # this path in every checkout, old or new
    from dreamdance_core.loading.svd import load_svd_single_file

    torch.set_num_threads(1)
    peak_anon, stop = [_rss_anon_mib()], threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            peak_anon[0] = max(peak_anon[0], _rss_anon_mib())

    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    start_anon = _rss_anon_mib()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began, outcome = time.perf_counter(), "imports only"
    if case["kind"] != "startup":
        try:
            components = load_svd_single_file(case["path"], config_dir=case["configs"],
                                              dtype=getattr(torch, case["dtype"]))
            loaded = time.perf_counter() - began
            models = (components.unet, components.vae, components.image_encoder)
            parameters = [p for model in models for p in model.parameters()]
            checksum = sum(float(p.detach().float().sum()) for p in parameters)  # reads every weight from the file
            count = sum(p.numel() for p in parameters) / 1e9
            outcome = f"loaded {count:.3f} B parameters in {loaded:.2f} s, every weight read (checksum {checksum:.3g})"
        except WeightFileError as error:
            outcome = f"refused: {str(error)[:150]}..."
    seconds = time.perf_counter() - began
    stop.set()
    sampler.join()
    peak_anon[0] = max(peak_anon[0], _rss_anon_mib())
    return {"seconds": seconds, "start_rss_mib": start_rss, "start_anon_mib": start_anon,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "peak_anon_mib": peak_anon[0], "outcome": outcome}


def run_in_subprocess(case: dict) -> dict:
    """``measure(case)`` in a fresh interpreter that imports ``dreamdance_core`` from ``case["code"]`` (default: this
    checkout): this file runs by its path there, so its own folder, not a checkout, is first on the module path."""
    env = {**os.environ, "PYTHONPATH": case.get("code") or str(ROOT)}
    done = subprocess.run([sys.executable, __file__, "--case", json.dumps(case)], capture_output=True, text=True,
                          check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, choices=(1.0, 0.5), help="width factor of the SVD model")
    parser.add_argument("--dtypes", default="float16,float32", help="dtypes to load the SVD file in")
    parser.add_argument("--keep", type=Path, default=None, help="write the files here and keep them")
    parser.add_argument("--code", default=None,
                        help="measure the loader of another checkout (e.g. a git worktree of an older commit)")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(measure(json.loads(args.case))))
        return
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="bench_load_memory_"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        configs = workdir / "configs"
        if not configs.exists():
            scaled_svd_configs(args.scale, configs)
        files = {"svd": (workdir / "svd_xt_1_1.safetensors", lambda: svd_shapes(configs)),
                 "sd15": (workdir / "v1-5-pruned-emaonly.safetensors", sd15_shapes)}
        for path, shapes in files.values():
            if not path.exists():
                began = time.perf_counter()
                size = write_streamed(path, shapes())
                print(f"wrote {path.name}: {size / 2**30:.2f} GiB in {time.perf_counter() - began:.1f} s")
        svd_size = files["svd"][0].stat().st_size / 2**20
        cases = [("start-up (imports only)", {"kind": "startup"})]
        cases += [(f"load SVD file as {d}", {"kind": "load", "path": str(files["svd"][0]), "dtype": d})
                  for d in args.dtypes.split(",")]
        cases += [("refuse SD1.5 file given as SVD", {"kind": "load", "path": str(files["sd15"][0]),
                                                      "dtype": "float16"})]
        print(f"\nSVD file {svd_size / 1024:.2f} GiB (scale {args.scale}); each case in a fresh process, 1 thread")
        print(f"{'case':34} {'seconds':>8} {'peak RSS MiB':>13} {'peak anon MiB':>14} {'anon-start / file':>18}")
        results = {}
        for title, case in cases:
            result = results[title] = run_in_subprocess({**case, "configs": str(configs), "code": args.code})
            growth = (result["peak_anon_mib"] - result["start_anon_mib"]) / svd_size
            print(f"{title:34} {result['seconds']:8.2f} {result['peak_rss_mib']:13.0f} "
                  f"{result['peak_anon_mib']:14.0f} {growth:18.2f}   {result['outcome']}")
        print(json.dumps({"scale": args.scale, "svd_file_mib": svd_size, "results": results}, indent=1))
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
