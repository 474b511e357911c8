"""What both training scripts share: config files + command-line overrides, the accelerator, atomic checkpoints with
exact resume, per-step random generators, the data loader, gradient checkpointing for processor-state models,
metrics logging and validation image grids.

Nothing here knows a DreamDance model; the scripts (``train/stage1.py``, ``train/stage2.py``) compose these pieces
in a linear ``main`` the way diffusers' ``examples/`` do.

Exact resume rests on three things:

* accelerate's ``save_state``/``load_state`` (weights through the scripts' save/load hooks, optimizer, LR scheduler,
  RNG states);
* a data order that is a pure function of ``(seed, epoch)`` (accelerate's seedable sampler) plus
  ``skip_first_batches`` for the position inside the epoch;
* randomness of a training step (noise, timesteps, dropout) drawn from a generator seeded by
  ``(seed, global step, micro step, process)`` (:func:`step_generator`), so it does not depend on what consumed the
  global RNG before.

Checkpoints are written to ``checkpoint-<step>.tmp`` and renamed to ``checkpoint-<step>`` only when complete, so a
run killed while saving leaves the previous checkpoint as the latest one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import resource
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import yaml

from dreamdance_core.validation import InputError, check_int, check_number, check_size

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


class TrainConfigError(InputError):
    """A configuration or command-line problem; the message names the option and the fix."""


# --- options: config file + command line ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One training option: its name (``--name`` on the command line, ``name:`` in a config file), type and default."""

    name: str
    default: Any
    help: str
    type: Callable[[str], Any] | None = None
    choices: Sequence[Any] | None = None
    nargs: str | None = None


def _bool(text: str) -> bool:
    lowered = str(text).lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {text!r}")


def build_parser(description: str, options: Sequence[Option]) -> argparse.ArgumentParser:
    """An argparse parser with ``--config`` and one ``--<name>`` per option (defaults shown in ``--help``)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", default=None, help="YAML or JSON file of option values; command-line flags win")
    for option in options:
        kind = option.type or (type(option.default) if option.default is not None else str)
        kind = _bool if kind is bool else kind
        parser.add_argument(
            f"--{option.name}", type=kind, default=option.default, help=option.help, choices=option.choices,
            nargs=option.nargs,
        )
    return parser


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML (or JSON, which YAML reads too) mapping of option names to values."""
    path = Path(path)
    if not path.is_file():
        raise TrainConfigError(f"config file {path} does not exist; pass an existing --config (see train/configs/)")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise TrainConfigError(f"config file {path} is not valid YAML/JSON: {exc}") from None
    if not isinstance(values, dict):
        raise TrainConfigError(f"config file {path} must hold a mapping of option: value, got {type(values).__name__}")
    return values


def parse_with_config(parser: argparse.ArgumentParser, input_args: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``input_args`` (default ``sys.argv[1:]``): config-file values replace the defaults, flags replace both.

    Config values go through the same type conversion and choices as flags, and unknown keys are refused."""
    argv = list(sys.argv[1:] if input_args is None else input_args)
    pre, _ = parser.parse_known_args(argv)
    if pre.config is not None:
        values = read_config_file(pre.config)
        actions = {action.dest: action for action in parser._actions}
        unknown = sorted(set(values) - set(actions) - {"config"})
        if unknown:
            raise TrainConfigError(
                f"config file {pre.config} has unknown option(s) {unknown}; run with --help for the valid names"
            )
        parser.set_defaults(**{key: _convert(actions[key], key, value, pre.config) for key, value in values.items()})
    return parser.parse_args(argv)


def _convert(action: argparse.Action, key: str, value: Any, source: str) -> Any:
    """A config-file value converted (and checked) like the same command-line flag."""
    convert = action.type or (lambda v: v)
    try:
        converted = [convert(str(v)) for v in value] if action.nargs and isinstance(value, list) else (
            None if value is None else convert(value if isinstance(value, str) else str(value))
        )
    except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
        raise TrainConfigError(f"config file {source}: option {key!r} has a bad value {value!r} ({exc})") from None
    if action.choices is not None and converted not in action.choices:
        raise TrainConfigError(f"config file {source}: {key}={value!r} is not one of {list(action.choices)}")
    return converted


# --- accelerator ----------------------------------------------------------------------------------------------------


def make_accelerator(args: argparse.Namespace, find_unused_parameters: bool):
    """The accelerate ``Accelerator`` for ``args``: devices and processes come from ``accelerate launch``."""
    from accelerate import Accelerator
    from accelerate.utils import (
        DataLoaderConfiguration,
        DistributedDataParallelKwargs,
        GradientAccumulationPlugin,
        ProjectConfiguration,
    )

    return Accelerator(
        mixed_precision=args.mixed_precision,
        # optimizer steps may straddle epochs: the data position is a plain batch count (see resume_position)
        gradient_accumulation_plugin=GradientAccumulationPlugin(
            num_steps=args.gradient_accumulation_steps, sync_with_dataloader=False
        ),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
        project_config=ProjectConfiguration(project_dir=args.output_dir),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)],
    )


def weight_dtype(accelerator) -> torch.dtype:
    """dtype for the frozen helper models (VAE, image encoder) under the run's mixed precision."""
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)


# --- randomness -----------------------------------------------------------------------------------------------------


def step_generator(seed: int, global_step: int, micro_step: int, process_index: int, device) -> torch.Generator:
    """A generator for one micro-batch, a pure function of its position in the run (so resume draws the same)."""
    key = np.random.SeedSequence([seed, global_step, micro_step, process_index]).generate_state(1, np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(key) & 0x7FFF_FFFF_FFFF_FFFF)


# --- gradient checkpointing -----------------------------------------------------------------------------------------


# --- checkpoints ----------------------------------------------------------------------------------------------------


def list_checkpoints(output_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints ``(step, folder)`` in ``output_dir``, oldest first (``.tmp`` folders are ignored)."""
    folder = Path(output_dir)
    found = [(int(m.group(1)), p) for p in folder.glob("checkpoint-*") if (m := CHECKPOINT_PATTERN.match(p.name))]
    return sorted(p for p in found if p[1].is_dir())


def resolve_checkpoint(output_dir: str | os.PathLike, resume: str | None) -> tuple[int, Path] | None:
    """``--resume_from_checkpoint``: ``None`` (fresh run), ``latest`` (None if there is none yet) or a folder."""
    if resume is None:
        return None
    if resume == "latest":
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(resume)
    match = CHECKPOINT_PATTERN.match(path.name)
    if not match or not path.is_dir():
        raise TrainConfigError(
            f"--resume_from_checkpoint {resume}: not a checkpoint-<step> folder; pass 'latest' or one of "
            f"{[str(p) for _, p in list_checkpoints(output_dir)]}"
        )
    return int(match.group(1)), path


def save_checkpoint(accelerator, output_dir: str | os.PathLike, step: int, total_limit: int | None) -> Path:
    """Atomically write ``checkpoint-<step>`` (via a ``.tmp`` folder and a rename), then keep ``total_limit``."""
    output_dir = Path(output_dir)
    final = output_dir / f"checkpoint-{step}"
    temporary = output_dir / f"checkpoint-{step}.tmp"
    if accelerator.is_main_process:
        for stale in output_dir.glob("checkpoint-*.tmp"):  # left by a run killed while saving
            shutil.rmtree(stale)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(temporary))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        os.replace(temporary, final)
        if total_limit is not None:
            for _, old in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


RANDOM_STATES = "random_states_{}.pkl"  # accelerate's name for each process's RNG states


def check_random_states(folder: str | os.PathLike, process_index: int = 0) -> bool:
    """Whether ``folder`` holds this process's RNG states as accelerate saves them. A file that cannot be read
    (tampered, truncated, or a pickle that is not weights-only) is refused: accelerate would ignore it without a word,
    and the "exact" resume would silently not be. A missing file gives a loud warning and False (the resume is not
    exact)."""
    from accelerate.utils.other import load

    path = Path(folder) / RANDOM_STATES.format(process_index)
    if not path.exists():
        print(f"WARNING: {path} is missing: the run resumes WITHOUT its saved random states, so it is not an exact "
              "resume (the weights, optimizer and data position are restored)", file=sys.stderr)
        return False
    try:
        states = load(path)
        keys = {"random_state", "numpy_random_seed", "torch_manual_seed"}
        if not isinstance(states, dict) or not keys <= set(states):
            raise ValueError(f"it lacks {sorted(keys - set(states) if isinstance(states, dict) else keys)}")
    except Exception as exc:  # noqa: BLE001 - any failure to read it means the same thing to the user
        raise TrainConfigError(
            f"checkpoint {folder}: {path.name} cannot be read ({type(exc).__name__}: {str(exc)[:200]}), so the resume "
            "would not be exact; refusing. Resume from another checkpoint, or delete the file to resume without the "
            "random states (a warning then says the resume is not exact)"
        ) from None
    return True


def load_checkpoint(accelerator, folder: str | os.PathLike) -> None:
    """``accelerator.load_state(folder)`` with a sentence instead of a traceback for a damaged checkpoint (a tampered
    ``optimizer.bin``, a truncated weights file, ...), and the random states checked (:func:`check_random_states`)."""
    check_random_states(folder, accelerator.process_index)
    try:
        accelerator.load_state(str(folder))
    except Exception as exc:  # noqa: BLE001 - every failure here is a damaged or foreign checkpoint
        others = [str(p) for _, p in list_checkpoints(Path(folder).parent) if p != Path(folder)]
        raise TrainConfigError(
            f"checkpoint {folder} cannot be resumed: {type(exc).__name__}: {str(exc)[:300]}; its files are damaged or "
            f"were not written by this script. Resume from another checkpoint {others} or start a fresh --output_dir"
        ) from None


@dataclass(frozen=True)
class DataPosition:
    """Where in the data a global step lands: the epoch and the batches of it already consumed."""

    epoch: int
    batch_in_epoch: int


def resume_position(global_step: int, gradient_accumulation_steps: int, batches_per_epoch: int) -> DataPosition:
    consumed = global_step * gradient_accumulation_steps
    return DataPosition(consumed // batches_per_epoch, consumed % batches_per_epoch)


def batches(accelerator, dataloader, start: DataPosition) -> Iterator[tuple[int, Any]]:
    """Endless ``(epoch, batch)`` stream from ``start``; each epoch's order is fixed by the seed and epoch number."""
    epoch, skip = start.epoch, start.batch_in_epoch
    while True:
        dataloader.set_epoch(epoch)
        if hasattr(dataloader.dataset, "set_epoch"):
            dataloader.dataset.set_epoch(epoch)
        loader = accelerator.skip_first_batches(dataloader, skip) if skip else dataloader
        for batch in loader:
            yield epoch, batch
        epoch, skip = epoch + 1, 0


# --- data -----------------------------------------------------------------------------------------------------------


def pose_maps(keypoints: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Pixel keypoints ``[..., F, 18, 3]`` (first person) -> rendered pose maps ``[..., F, 3, H, W]`` in -1..1."""
    from dreamdance_core.dataset import render_pose_maps

    maps = render_pose_maps(keypoints.reshape(-1, *keypoints.shape[-2:]).numpy(), (width, height))  # [N, H, W, 3]
    return torch.from_numpy(maps).permute(0, 3, 1, 2).reshape(*keypoints.shape[:-2], 3, height, width)


def collate_clips(items: list[dict]) -> dict[str, Any]:
    """Stack :class:`dreamdance_core.dataset.ClipDataset` items (``controls``: name -> ``[b, f, 3, H, W]``, when the
    items carry control maps) and render their pose maps (``pose_maps``)."""
    batch = {
        key: torch.stack([item[key] for item in items])
        for key in ("reference", "pixel_values", "depth", "normal", "pose", "reference_pose")
    }
    if "controls" in items[0]:
        names = items[0]["controls"]
        batch["controls"] = {name: torch.stack([item["controls"][name] for item in items]) for name in names}
    height, width = batch["pixel_values"].shape[-2:]
    batch["pose_maps"] = batch.get("controls", {}).get("pose")
    if batch["pose_maps"] is None:
        batch["pose_maps"] = pose_maps(batch["pose"], width, height)
    batch["reference_pose_maps"] = pose_maps(batch["reference_pose"][:, None], width, height)[:, 0]
    batch["video_id"] = [item["video_id"] for item in items]
    return batch


def clip_dataset(args: argparse.Namespace, root: str, reference: str = "random"):
    """The :class:`ClipDataset` the options describe (size, frames, stride, bad-data policy, and the control maps of
    ``args.modalities`` where the script has that option)."""
    from dreamdance_core.dataset import ClipDataset
    from dreamdance_core.modalities import codecs

    modalities = getattr(args, "modalities", None)  # Stage 2: the controller's; Stage 1 reads no control maps

    return ClipDataset(
        root, num_frames=args.num_frames, size=(args.width, args.height), stride=args.frame_stride,
        window_step=args.window_step, reference=reference, policy=args.data_policy,
        check_images=args.check_images, seed=args.seed, controls=codecs(modalities) if modalities else None,
    )


def make_dataloader(args: argparse.Namespace, dataset) -> torch.utils.data.DataLoader:
    if len(dataset) < args.train_batch_size:
        raise TrainConfigError(
            f"the dataset has {len(dataset)} clip(s), fewer than train_batch_size={args.train_batch_size}; "
            "lower the batch size or add videos"
        )
    return torch.utils.data.DataLoader(
        dataset, batch_size=args.train_batch_size, shuffle=True, drop_last=True, collate_fn=collate_clips,
        num_workers=args.dataloader_num_workers,
    )


# --- metrics and images ---------------------------------------------------------------------------------------------


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: CUDA allocator peak on a GPU, the process's maximum resident set size on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


@dataclass
class MetricsLog:
    """Appends one JSON line per optimizer step to ``<output_dir>/logs.jsonl`` (main process) and tracks speed."""

    path: Path
    enabled: bool
    started: float = field(default_factory=time.perf_counter)
    steps: int = 0

    def log(self, step: int, **values: Any) -> dict[str, Any]:
        self.steps += 1
        elapsed = time.perf_counter() - self.started
        record = {"step": step, **values, "steps_per_second": self.steps / elapsed if elapsed > 0 else math.nan}
        if self.enabled:
            with self.path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
        return record


def read_metrics(output_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of ``logs.jsonl`` (for tests and benchmarks)."""
    path = Path(output_dir) / "logs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_image_grid(path: str | os.PathLike, rows: Sequence[torch.Tensor]) -> Path:
    """Write rows of core images (each ``[F, 3, H, W]`` in -1..1) as one PNG grid, one row per tensor."""
    import cv2

    grid = torch.cat([torch.cat(list(row.float().clamp(-1, 1)), dim=-1) for row in rows], dim=-2)  # [3, rH, FW]
    image = ((grid.permute(1, 2, 0).cpu().numpy() + 1.0) * 127.5).round().astype(np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image[..., ::-1]):
        raise OSError(f"could not write validation image {path}; check that the folder is writable")
    return path


# --- the training loop ----------------------------------------------------------------------------------------------


def train_loop(
    accelerator,
    module: torch.nn.Module,
    optimizer,
    lr_scheduler,
    dataloader,
    args: argparse.Namespace,
    compute_loss: Callable[[Any, torch.Generator], torch.Tensor],
    validate: Callable[[int], Any] | None = None,
) -> int:
    """Resume, then train until ``args.max_train_steps`` optimizer steps; returns the last step.

    ``compute_loss(batch, generator)`` runs the prepared ``module`` on one micro-batch, drawing every random number
    from ``generator`` (:func:`step_generator`). Every optimizer step is logged (loss averaged over its micro-batches
    and processes, lr, steps/s, peak memory, the clips of the last micro-batch); checkpoints every
    ``args.checkpointing_steps`` and at the end; ``validate(step)`` every ``args.validation_steps`` and at the end.

    With ``args.use_ema`` an :class:`~diffusers.training_utils.EMAModel` of the trained parameters is updated after
    every optimizer step and saved in the checkpoints; validation runs on the averaged weights, and on return they
    are in ``module`` (the scripts write their final weights from it).
    """
    output_dir = Path(args.output_dir)
    global_step = 0
    trainable = [p for p in module.parameters() if p.requires_grad]
    ema = None
    if args.use_ema:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(trainable, decay=args.ema_decay)
        accelerator.register_for_checkpointing(ema)  # before load_state: a resumed run continues the average
    resume = resolve_checkpoint(output_dir, args.resume_from_checkpoint)
    if resume is not None:
        global_step, folder = resume
        accelerator.print(f"resuming from {folder} (step {global_step})")
        load_checkpoint(accelerator, folder)
    position = resume_position(global_step, args.gradient_accumulation_steps, len(dataloader))
    metrics = MetricsLog(output_dir / "logs.jsonl", enabled=accelerator.is_main_process)
    micro_step, loss_sum = 0, 0.0
    stream = batches(accelerator, dataloader, position) if global_step < args.max_train_steps else iter(())
    for epoch, batch in stream:
        generator = step_generator(
            args.seed, 0 if args.fixed_noise else global_step, micro_step, accelerator.process_index, accelerator.device
        )
        with accelerator.accumulate(module):
            loss = compute_loss(batch, generator)
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(trainable, args.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        loss_sum += accelerator.gather(loss.detach()[None]).mean().item()
        micro_step += 1
        if not accelerator.sync_gradients:
            continue
        global_step += 1
        if ema is not None:
            ema.step(trainable)
        metrics.log(
            global_step, loss=loss_sum / micro_step, lr=lr_scheduler.get_last_lr()[0], epoch=epoch,
            peak_memory_mb=peak_memory_mb(accelerator.device), videos=batch["video_id"],
            processes=accelerator.num_processes, distributed=accelerator.distributed_type.value,
            mixed_precision=accelerator.mixed_precision,
        )
        micro_step, loss_sum = 0, 0.0
        done = global_step >= args.max_train_steps
        if (args.checkpointing_steps and global_step % args.checkpointing_steps == 0) or done:
            save_checkpoint(accelerator, output_dir, global_step, args.checkpoints_total_limit)
        if validate is not None and args.validation_steps and (global_step % args.validation_steps == 0 or done):
            if accelerator.is_main_process:
                with averaged_weights(ema, trainable):
                    validate(global_step)
        if done:
            break
    accelerator.wait_for_everyone()
    if ema is not None:
        ema.copy_to(trainable)
    return global_step


@contextlib.contextmanager
def averaged_weights(ema, parameters: list[torch.nn.Parameter]) -> Iterator[None]:
    """The EMA weights in ``parameters`` for the duration of the block (nothing changes without an EMA)."""
    if ema is None:
        yield
        return
    ema.store(parameters)
    ema.copy_to(parameters)
    try:
        yield
    finally:
        ema.restore(parameters)


# options every training script has (the scripts add their model options and paper defaults)
def common_options(*, width: int, height: int, num_frames: int, max_train_steps: int, learning_rate: float,
                   lr_warmup_steps: int, paper: str) -> list[Option]:
    return [
        # data
        Option("train_data_dir", None, "dataset folder in the layout of dreamdance_core.dataset", type=str),
        Option("validation_data_dir", None, "dataset for validation samples (default: --train_data_dir)", type=str),
        Option("width", width, f"training width in pixels ({paper}: {width})", type=int),
        Option("height", height, f"training height in pixels ({paper}: {height})", type=int),
        Option("num_frames", num_frames, f"frames per clip ({paper}: {num_frames})", type=int),
        Option("frame_stride", 1, "take every n-th frame of a video", type=int),
        Option("window_step", None, "frames between clip starts (default: non-overlapping clips)", type=int),
        Option("data_policy", "skip", "broken videos: 'skip' (warn, leave out) or 'error' (stop)",
               choices=("skip", "error")),
        Option("check_images", False, "decode every image when the run starts (slow; finds unreadable files early)",
               type=bool),
        Option("dataloader_num_workers", 0, "data loading worker processes", type=int),
        # optimisation
        Option("seed", 42, "seed of the data order, noise, timesteps and dropout", type=int),
        Option("train_batch_size", 1, "clips per process per micro-batch", type=int),
        Option("gradient_accumulation_steps", 1, "micro-batches per optimizer step", type=int),
        Option("max_train_steps", max_train_steps, f"optimizer steps ({paper}: {max_train_steps:,})", type=int),
        Option("learning_rate", learning_rate, f"AdamW learning rate ({paper}: {learning_rate:g})", type=float),
        Option("lr_scheduler", "constant_with_warmup", "diffusers scheduler name", type=str),
        Option("lr_warmup_steps", lr_warmup_steps, f"warm-up steps ({paper}: {lr_warmup_steps})", type=int),
        Option("adam_beta1", 0.9, "AdamW beta1", type=float),
        Option("adam_beta2", 0.999, "AdamW beta2", type=float),
        Option("adam_weight_decay", 1e-2, "AdamW weight decay", type=float),
        Option("adam_epsilon", 1e-8, "AdamW epsilon", type=float),
        Option("max_grad_norm", 1.0, "gradient clipping norm", type=float),
        Option("use_ema", False, "keep an exponential moving average of the trained weights (diffusers' EMAModel); "
               "validation samples and the final weights use it, checkpoints hold both", type=bool),
        Option("ema_decay", 0.999, "EMA decay; at optimizer step n >= 2 it is min(ema_decay, n / (n + 9)) (step 1 "
               "copies the weights)", type=float),
        Option("reference_dropout", 0.1, "probability of dropping the reference image (learns the CFG branch)",
               type=float),
        Option("mixed_precision", None, "no / fp16 / bf16 (GPUs; on a CPU fp32 is faster); default: the accelerate "
               "launch config's (train/accelerate/), else no", type=str, choices=("no", "fp16", "bf16")),
        Option("gradient_checkpointing", False, "recompute UNet blocks in backward to save memory", type=bool),
        Option("use_8bit_adam", False, "bitsandbytes' 8-bit AdamW (optimizer state in 8 bits: ~1/4 of AdamW's; needs "
               "pip install bitsandbytes)", type=bool),
        Option("fixed_noise", False, "debug: the same noise, timesteps and dropout every step (over-fitting check)",
               type=bool),
        # checkpoints, validation
        Option("output_dir", None, "folder for checkpoints, logs, validation images and the final weights", type=str),
        Option("checkpointing_steps", 1000, "save a resumable checkpoint every n steps (0: only at the end)", type=int),
        Option("checkpoints_total_limit", 3, "keep at most n checkpoints (oldest removed)", type=int),
        Option("resume_from_checkpoint", None, "'latest' or a checkpoint-<step> folder", type=str),
        Option("validation_steps", 1000, "write validation samples every n steps (0: never)", type=int),
        Option("validation_num_frames", 4, "frames of the validation clip", type=int),
        Option("validation_inference_steps", 25, "sampling steps of the validation samples", type=int),
    ]


def check_common_args(args: argparse.Namespace) -> None:
    """Refuse option values that cannot train, naming the fix."""
    for name in ("train_data_dir", "output_dir"):
        if getattr(args, name) is None:
            raise TrainConfigError(f"--{name} is required")
    if args.width % 8 or args.height % 8:
        raise TrainConfigError(f"--width {args.width} and --height {args.height} must be multiples of 8 (VAE)")
    try:
        _check_numbers(args)
    except InputError as error:  # one type for the scripts' refusals
        raise TrainConfigError(str(error)) from None
    output = Path(args.output_dir)
    blocking = next((p for p in (output, *output.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise TrainConfigError(f"--output_dir {output}: {blocking} is a file, not a folder; give a folder (it is "
                               "created when missing)")
    if not 0.0 <= args.reference_dropout <= 1.0:
        raise TrainConfigError(f"--reference_dropout must be in [0, 1], got {args.reference_dropout}")
    for name in ("train_batch_size", "gradient_accumulation_steps", "max_train_steps", "num_frames"):
        if getattr(args, name) < 1:
            raise TrainConfigError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if not 0.0 <= args.ema_decay < 1.0:
        raise TrainConfigError(f"--ema_decay must be in [0, 1), got {args.ema_decay}")
    if args.checkpoints_total_limit is not None and args.checkpoints_total_limit < 1:
        raise TrainConfigError("--checkpoints_total_limit must be at least 1 (the latest checkpoint is always kept)")


def optimizer_class(args: argparse.Namespace) -> type:
    """``torch.optim.AdamW``, or bitsandbytes' ``AdamW8bit`` with ``--use_8bit_adam`` (an error says how to get it)."""
    if not getattr(args, "use_8bit_adam", False):
        return torch.optim.AdamW
    try:
        import bitsandbytes
    except ImportError as exc:
        raise TrainConfigError(f"--use_8bit_adam needs bitsandbytes, which cannot be imported ({exc}); install it "
                               "next to your torch (pip install bitsandbytes) or leave --use_8bit_adam off") from None
    return bitsandbytes.optim.AdamW8bit


def _lr_schedulers() -> tuple[str, ...]:
    """The names diffusers' ``get_scheduler`` takes (this diffusers version's)."""
    from diffusers.optimization import SchedulerType

    return tuple(kind.value for kind in SchedulerType)


def _check_numbers(args: argparse.Namespace) -> None:
    """Numbers finite and in range (NaN, inf and negative values refused), sizes and counts usable."""
    check_size(args.width, args.height, "--width/--height")
    check_number("--learning_rate", args.learning_rate, 0.0, 1.0, "give a positive learning rate such as 1e-5")
    if args.learning_rate == 0:
        raise InputError("--learning_rate is 0: nothing would train; give a positive learning rate such as 1e-5")
    schedulers = _lr_schedulers()
    if args.lr_scheduler not in schedulers:
        raise InputError(f"--lr_scheduler {args.lr_scheduler!r} is not a diffusers LR scheduler; choose one of "
                         f"{list(schedulers)}")
    check_int("--lr_warmup_steps", args.lr_warmup_steps, 0, None, "give 0 or more warm-up steps")
    check_int("--dataloader_num_workers", args.dataloader_num_workers, 0, 256, "give 0 (load in the main process) or "
              "a number of worker processes")
    check_int("--seed", args.seed, 0, 2**32 - 1, "give a seed in 0..2**32-1")
    check_int("--frame_stride", args.frame_stride, 1, None, "give 1 (every frame) or more")
    if args.window_step is not None:
        check_int("--window_step", args.window_step, 1, None, "give 1 or more frames between clip starts")
    for name in ("adam_beta1", "adam_beta2"):
        check_number(f"--{name}", getattr(args, name), 0.0, 0.999999, "give a value in 0..1 (exclusive), like 0.9")
    check_number("--adam_weight_decay", args.adam_weight_decay, 0.0, 10.0, "give a weight decay like 1e-2")
    check_number("--adam_epsilon", args.adam_epsilon, 1e-30, 1.0, "give a small positive epsilon like 1e-8")
    if args.adam_epsilon <= 0:
        raise InputError("--adam_epsilon must be positive; give a small positive epsilon like 1e-8")
    check_number("--max_grad_norm", args.max_grad_norm, 0.0, None, "give a positive clipping norm like 1.0")
    check_number("--reference_dropout", args.reference_dropout, 0.0, 1.0)
    check_number("--ema_decay", args.ema_decay, 0.0, 1.0)
    for name in ("checkpointing_steps", "validation_steps"):
        check_int(f"--{name}", getattr(args, name), 0, None, "give 0 (never) or a number of steps")
    check_int("--validation_num_frames", args.validation_num_frames, 1, None, "give 1 or more frames")
    check_int("--validation_inference_steps", args.validation_inference_steps, 1, None, "give 1 or more steps")


def make_optimizer_and_schedule(accelerator, parameters: list, args: argparse.Namespace):
    """AdamW over ``parameters`` and the LR schedule (warm-up counted in optimizer steps of every process, as the
    prepared scheduler steps once per process)."""
    from diffusers.optimization import get_scheduler

    optimizer = optimizer_class(args)(
        parameters, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.adam_weight_decay, eps=args.adam_epsilon,
    )
    lr_scheduler = get_scheduler(
        args.lr_scheduler, optimizer=optimizer, num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=args.max_train_steps * accelerator.num_processes,
    )
    return optimizer, lr_scheduler


def validation_clip(args: argparse.Namespace) -> dict[str, torch.Tensor]:
    """The first clip of the validation set (its first frame as the reference), with its pose maps."""
    root = args.validation_data_dir or args.train_data_dir
    dataset = clip_dataset(
        argparse.Namespace(**{**vars(args), "num_frames": args.validation_num_frames}), root, "first"
    )
    batch = collate_clips([dataset[0]])
    return {k: ({n: m[0] for n, m in v.items()} if k == "controls" else v[0]) for k, v in batch.items()
            if k != "video_id"}


def freeze_helpers(accelerator, *modules: torch.nn.Module) -> None:
    """Frozen, eval-mode, on the device, in the run's weight dtype (fp32 stays untouched)."""
    dtype = weight_dtype(accelerator)
    for module in modules:
        module.requires_grad_(False).eval().to(accelerator.device)
        if dtype != torch.float32:
            module.to(dtype=dtype)


def run_cli(main: Callable[[argparse.Namespace], Any], parse_args: Callable, argv: Sequence[str] | None) -> int:
    """Command-line entry of the scripts: configuration and data problems end with a message, not a traceback."""
    from dreamdance_core.dataset import DatasetError
    from dreamdance_core.weights import WeightFileError

    try:
        main(parse_args(argv))
    except (InputError, TrainConfigError, DatasetError, WeightFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted (resume with --resume_from_checkpoint latest)", file=sys.stderr)
        return 130
    return 0
