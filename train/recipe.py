"""Run a training recipe: an ordered list of steps (the demo's rounds, ``train/recipes/*.yaml``), each one command.

A recipe file holds ``launch`` (how a training script is started, e.g. ``torchrun --nproc_per_node 2``), ``base``
(settings every training step shares) and ``steps``, in order. A step is either

* ``run``: shell commands, run as written (data generation, copying a finished folder, a benchmark), or
* ``script`` with ``settings`` and ``seed``: ``<launch> <script> --name value ...`` with ``base`` overridden by the
  step's ``settings``, then ``--seed`` (``base: false`` leaves ``base`` out, ``launch`` replaces the recipe's),

plus ``after`` (shell commands run when the step has finished) and ``experiment: true`` (a step that is not part of the
chain: left out unless ``--experiments`` or ``--only`` names it). Every value goes on the command line, so what
``--dry-run`` prints is exactly what runs::

    python train/recipe.py train/recipes/stage2_demo.yaml --dry-run
    python train/recipe.py train/recipes/stage2_demo.yaml --from stage2_demo_ema5 --until stage2_demo_ema6
    python train/recipe.py train/recipes/stage1_demo.yaml --launch "accelerate launch"   # e.g. on one GPU

Commands run from the repository root through ``/bin/sh``, with this Python's folder first on ``PATH`` (so ``python``
and ``torchrun`` are this environment's); the first one that fails stops the recipe with its exit status.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

REPO = Path(__file__).resolve().parents[1]
STEP_KEYS = {"name", "run", "script", "settings", "seed", "base", "launch", "after", "experiment"}


class RecipeError(ValueError):
    """A malformed recipe or an unknown step name; the message names the step and the fix."""


@dataclass(frozen=True)
class Step:
    """One step of a recipe: its name and the shell commands it runs, in order."""

    name: str
    commands: tuple[str, ...]
    experiment: bool = False
    settings: dict[str, Any] | None = None  # a script step's flags (base, settings, seed), in command-line order


def load_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """The recipe file's mapping, checked: a list of steps with unique names, each a ``run`` or a ``script``."""
    recipe = yaml.safe_load(Path(path).read_text())
    if not isinstance(recipe, dict) or not isinstance(recipe.get("steps"), list):
        raise RecipeError(f"{path}: a recipe is a mapping with a list of `steps`")
    names = [step.get("name") for step in recipe["steps"]]
    for step, name in zip(recipe["steps"], names):
        unknown = set(step) - STEP_KEYS
        if not isinstance(name, str) or unknown or ("run" in step) == ("script" in step):
            raise RecipeError(
                f"{path}: step {name!r} needs a `name` and exactly one of `run` / `script`"
                + (f"; unknown keys {sorted(unknown)}" if unknown else "")
            )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise RecipeError(f"{path}: step names must be unique, {duplicates} repeat")
    return recipe


def step_settings(recipe: dict[str, Any], step: dict[str, Any]) -> dict[str, Any]:
    """A script step's options: the recipe's ``base`` (unless ``base: false``), its ``settings``, then ``seed``."""
    settings = dict(recipe.get("base") or {}) if step.get("base", True) else {}
    settings.update(step.get("settings") or {})
    if "seed" in step:
        settings["seed"] = step["seed"]
    return settings


def flag_values(value: Any) -> list[str]:
    """The command-line words of one option value, as the training scripts parse them."""
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, list):
        return [word for item in value for word in flag_values(item)]
    if value is None or isinstance(value, dict):
        raise RecipeError(f"an option value must be a number, string, boolean or list, got {value!r}")
    return [repr(value) if isinstance(value, float) else str(value)]


def script_command(launch: str, script: str, settings: dict[str, Any]) -> str:
    """``<launch> <script> --name value ...`` as one shell line."""
    words = [script]
    for name, value in settings.items():
        words += [f"--{name}", *flag_values(value)]
    return f"{launch} {shlex.join(words)}"


def recipe_steps(recipe: dict[str, Any], launch: str | None = None) -> list[Step]:
    """Every step of ``recipe`` with its exact commands; ``launch`` replaces the recipe's own launcher."""
    default_launch = launch or recipe.get("launch") or "python"
    steps = []
    for step in recipe["steps"]:
        settings = None
        if "script" in step:
            settings = step_settings(recipe, step)
            commands = [script_command(step.get("launch", default_launch), step["script"], settings)]
        else:
            commands = list(step["run"])
        commands += list(step.get("after") or [])
        steps.append(Step(step["name"], tuple(commands), bool(step.get("experiment", False)), settings))
    return steps


def select_steps(
    steps: Sequence[Step],
    start: str | None = None,
    until: str | None = None,
    only: Sequence[str] = (),
    experiments: bool = False,
) -> list[Step]:
    """The steps to run, in recipe order: ``only`` (any, experiments too), else ``start``..``until`` inclusive
    without the experiments unless ``experiments``."""
    names = [step.name for step in steps]
    for name in [start, until, *only]:
        if name is not None and name not in names:
            raise RecipeError(f"no step {name!r} in this recipe; its steps are {names}")
    if only:
        return [step for step in steps if step.name in only]
    first = names.index(start) if start else 0
    last = names.index(until) if until else len(names) - 1
    if first > last:
        raise RecipeError(f"--from {start} comes after --until {until}")
    return [step for step in steps[first : last + 1] if experiments or not step.experiment]


def run_steps(steps: Sequence[Step], dry_run: bool = False, cwd: str | os.PathLike = REPO) -> int:
    """Print each step's commands and (unless ``dry_run``) run them; the first failure's exit status, else 0."""
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    for step in steps:
        print(f"# {step.name}" + (" (experiment)" if step.experiment else ""), flush=True)
        for command in step.commands:
            print(command, flush=True)
            if dry_run:
                continue
            result = subprocess.run(command, shell=True, cwd=cwd, env=env)
            if result.returncode != 0:
                print(f"recipe: step {step.name} failed (exit status {result.returncode}): {command}", file=sys.stderr)
                return result.returncode
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipe", help="recipe file (train/recipes/*.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="print every command, run nothing")
    parser.add_argument("--from", dest="start", metavar="STEP", help="start at this step (e.g. to resume a recipe)")
    parser.add_argument("--until", metavar="STEP", help="stop after this step")
    parser.add_argument("--only", metavar="STEP", action="append", default=[],
                        help="run just this step (repeatable; experiments included)")
    parser.add_argument("--experiments", action="store_true", help="include the steps marked `experiment: true`")
    parser.add_argument("--launch", help="replace the recipe's launcher (not a step's own `launch`), e.g. 'python' "
                        "or 'accelerate launch'")
    args = parser.parse_args(argv)
    try:
        steps = recipe_steps(load_recipe(args.recipe), args.launch)
        chosen = select_steps(steps, args.start, args.until, args.only, args.experiments)
    except RecipeError as exc:
        parser.error(str(exc))
    return run_steps(chosen, dry_run=args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
