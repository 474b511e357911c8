"""The demo recipes (train/recipes/*.yaml, run by train/recipe.py) against the 26 config files they replace.

Until commit 4fefa05 every demo round was a file in train/configs/ (``stage1_demo*.yaml``, ``stage2_demo*.yaml``)
whose header gave the command that ran it. ``OLD_ROUNDS`` holds, per old file, a digest of its settings as that command
ran them: the file's YAML values, then the header command's flags (paths, and Stage 1's ``--train_batch_size 1`` per
process of two) over them, as the scripts merge a config and flags. The recipe step of the same name must give the
same settings, value for value and type for type. ``test_digests_come_from_the_old_files`` recomputes the digests
from git history where that commit is at hand (a clone with full history) and is skipped elsewhere.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RECIPES = {1: REPO / "train" / "recipes" / "stage1_demo.yaml", 2: REPO / "train" / "recipes" / "stage2_demo.yaml"}
OLD_COMMIT = "4fefa05"  # the last commit with the old demo configs in train/configs/


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


recipe = load_module(REPO / "train" / "recipe.py", "dreamdance_train_recipe")


def digest(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


# The flags each old config's header ran it with (Stage 1: the header of stage1_demo.yaml, for all its rounds).
_S1 = {"pretrained_model": "runs/demo_base", "image_encoder": "runs/demo_base", "train_data_dir": "runs/demo_data",
       "train_batch_size": 1}


def _s1(out: str, init: str | None = None) -> dict:
    return {**_S1, "output_dir": f"runs/{out}", **({"init_from": f"runs/{init}/weights"} if init else {})}


def _s2(out: str, svd: str, init: str | None = None) -> dict:
    return {"pretrained_svd": svd, "train_data_dir": "runs/demo_data", "output_dir": f"runs/{out}",
            **({"init_from": f"runs/{init}/weights"} if init else {})}


HEADER_FLAGS = {
    "stage1_demo": _s1("stage1_demo"),
    "stage1_demo_step1b": _s1("stage1_demo_step1b", "stage1_demo"),
    "stage1_demo_step2": _s1("stage1_demo_step2", "stage1_demo_step1b"),
    "stage1_demo_step3": _s1("stage1_demo_step3", "stage1_demo_step2"),
    "stage1_demo_ema": _s1("stage1_demo_ema", "stage1_demo_step3"),
    # its header: "--init_from dreamdance_core/demo/stage1", the shipped weights then, i.e. stage1_demo_ema's
    "stage1_demo_depth": _s1("stage1_demo_depth", "stage1_demo_ema"),
    "stage1_demo_depth2": _s1("stage1_demo_depth2", "stage1_demo_ema"),
    "stage2_demo_pretrain": _s2("svd_pretrained", "runs/svd_base"),
    "stage2_demo": _s2("stage2_demo", "runs/svd_pretrained/weights"),
    "stage2_demo_pretrain_ema": _s2("svd_pretrained_ema", "runs/svd_pretrained/weights"),
    "stage2_demo_ema": _s2("stage2_demo_ema", "runs/svd_pretrained_ema/weights", "stage2_demo"),
    "stage2_demo_ema3_high_noise": _s2(
        "stage2_demo_ema3_high_noise", "runs/svd_pretrained_ema3/weights", "stage2_demo_ema3"
    ),
}
_LATER_ROUNDS = [(2, "svd_pretrained_ema", "stage2_demo_ema"), (3, "svd_pretrained_ema2", "stage2_demo_ema2"),
                 (4, "svd_pretrained_ema3", "stage2_demo_ema3_high_noise")]
_LATER_ROUNDS += [(n, f"svd_pretrained_ema{n - 1}", f"stage2_demo_ema{n - 1}") for n in range(5, 9)]
for _n, _base, _control in _LATER_ROUNDS:  # round n: base from round n - 1's, control from the previous control round
    HEADER_FLAGS[f"stage2_demo_pretrain_ema{_n}"] = _s2(f"svd_pretrained_ema{_n}", f"runs/{_base}/weights")
    HEADER_FLAGS[f"stage2_demo_ema{_n}"] = _s2(f"stage2_demo_ema{_n}", f"runs/svd_pretrained_ema{_n}/weights", _control)

# digest({**yaml.safe_load(<OLD_COMMIT>:train/configs/<name>.yaml), **HEADER_FLAGS[name]})
OLD_ROUNDS = {
    "stage1_demo": "f45f4c6ab90de501",
    "stage1_demo_depth": "86c85a030184fa39",
    "stage1_demo_depth2": "e8aed4453257491f",
    "stage1_demo_ema": "d7a4ca483240dfd3",
    "stage1_demo_step1b": "0fc2129207add6e7",
    "stage1_demo_step2": "74ac0cf2a0a81438",
    "stage1_demo_step3": "06be35a37336a3c4",
    "stage2_demo": "ee9d33baefb9929e",
    "stage2_demo_ema": "38c9d1b01756f160",
    "stage2_demo_ema2": "7acb0368eac29e62",
    "stage2_demo_ema3": "60b28eb26d8a1264",
    "stage2_demo_ema3_high_noise": "5197b51d065f5bdb",
    "stage2_demo_ema4": "f38edfc6c776bddc",
    "stage2_demo_ema5": "2b6b58879447214a",
    "stage2_demo_ema6": "d4d1fc18fb839b46",
    "stage2_demo_ema7": "71b80cdfd7e72236",
    "stage2_demo_ema8": "8e434842060f34e2",
    "stage2_demo_pretrain": "052c690573da2e11",
    "stage2_demo_pretrain_ema": "d49e4fcca8466186",
    "stage2_demo_pretrain_ema2": "fcbca44fa2d6d5f2",
    "stage2_demo_pretrain_ema3": "9c5bddd6b0a8f86d",
    "stage2_demo_pretrain_ema4": "1eeec9e3d1456fa1",
    "stage2_demo_pretrain_ema5": "8e171bb70b6f0fe8",
    "stage2_demo_pretrain_ema6": "b4bd78706b9d4b16",
    "stage2_demo_pretrain_ema7": "87d7527c9202d488",
    "stage2_demo_pretrain_ema8": "2a59c412e01b974f",
}

# The order the old headers and docs/demo_training.md give (stage1_demo_depth, an experiment, after stage1_demo_ema).
OLD_ORDER = {
    1: ["stage1_demo", "stage1_demo_step1b", "stage1_demo_step2", "stage1_demo_step3", "stage1_demo_ema",
        "stage1_demo_depth", "stage1_demo_depth2"],
    2: ["stage2_demo_pretrain", "stage2_demo", "stage2_demo_pretrain_ema", "stage2_demo_ema"]
    + [name for n in (2, 3) for name in (f"stage2_demo_pretrain_ema{n}", f"stage2_demo_ema{n}")]
    + ["stage2_demo_ema3_high_noise"]
    + [name for n in range(4, 9) for name in (f"stage2_demo_pretrain_ema{n}", f"stage2_demo_ema{n}")],
}


def recipe_steps(stage: int):
    return recipe.recipe_steps(recipe.load_recipe(RECIPES[stage]))


def test_recipes_hold_every_old_round_in_order():
    for stage in (1, 2):
        names = [step.name for step in recipe_steps(stage) if step.name.startswith(f"stage{stage}_demo")]
        assert names == OLD_ORDER[stage]
    assert sorted(OLD_ORDER[1] + OLD_ORDER[2]) == sorted(OLD_ROUNDS)


@pytest.mark.parametrize("name", sorted(OLD_ROUNDS))
def test_recipe_step_has_the_old_config_settings(name):
    step = next(step for step in recipe_steps(int(name[5])) if step.name == name)
    assert digest(step.settings) == OLD_ROUNDS[name], (
        f"{name}: the recipe's settings differ from the old config's; compare with `git show "
        f"{OLD_COMMIT}:train/configs/{name}.yaml` and its header's command:\n{json.dumps(step.settings, indent=1)}"
    )


def test_digests_come_from_the_old_files():
    show = ["git", "-C", str(REPO), "show"]
    if subprocess.run([*show, f"{OLD_COMMIT}:train/configs/stage2_demo.yaml"], capture_output=True).returncode:
        pytest.skip(f"commit {OLD_COMMIT} is not in this clone's history")
    for name, expected in OLD_ROUNDS.items():
        text = subprocess.run([*show, f"{OLD_COMMIT}:train/configs/{name}.yaml"], capture_output=True, text=True,
                              check=True).stdout
        assert digest({**yaml.safe_load(text), **HEADER_FLAGS[name]}) == expected, name


def test_digest_tells_values_and_types_apart():
    step = next(step for step in recipe_steps(2) if step.name == "stage2_demo_ema8")
    assert digest(step.settings) == OLD_ROUNDS["stage2_demo_ema8"]
    for key, changed in [("seed", 59), ("learning_rate", "1.0e-4"), ("noise_p_mean", 1.4), ("use_ema", "true")]:
        assert digest({**step.settings, key: changed}) != OLD_ROUNDS["stage2_demo_ema8"], key
    assert digest({k: v for k, v in step.settings.items() if k != "noise_p_mean"}) != OLD_ROUNDS["stage2_demo_ema8"]


@pytest.mark.parametrize("stage", [1, 2])
def test_printed_commands_parse_to_the_step_settings(stage):
    """Each training command, read back by its script's own parser, gives every setting of the step."""
    scripts = {}
    for step in recipe_steps(stage):
        if step.settings is None:
            continue
        (command,) = [c for c in step.commands if ".py " in c and c.split(".py ")[0].split()[-1].startswith("train/")]
        words = shlex.split(command)
        script = next(word for word in words if word.startswith("train/") and word.endswith(".py"))
        if script not in scripts:
            scripts[script] = load_module(REPO / script, f"dreamdance_recipe_{Path(script).stem}")
        args = scripts[script].parse_args(words[words.index(script) + 1 :])
        for key, value in step.settings.items():
            assert getattr(args, key) == value, (step.name, key)


def test_training_steps_start_from_earlier_outputs():
    """Every weights folder a step starts from is made by an earlier step (or is the demo base)."""
    for stage in (1, 2):
        made = set()
        for step in recipe_steps(stage):
            settings = step.settings or {}
            for key in ("init_from", "pretrained_svd", "pretrained_model", "image_encoder", "train_data_dir"):
                if key in settings:
                    assert settings[key].removesuffix("/weights") in made, (step.name, key, settings[key])
            made |= {settings["output_dir"]} if "output_dir" in settings else set()
            made |= {part.split("'")[1] for c in step.commands for part in c.split("g(")[1:]}


def write_recipe(tmp_path: Path, log: Path) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({
        "launch": "python",
        "base": {"width": 64, "flag": True},
        "steps": [
            {"name": "a", "run": [f"echo a >> {log}"]},
            {"name": "b", "script": str(tmp_path / "echo_args.py"), "settings": {"sizes": [1, 2], "lr": 1.0e-4},
             "seed": 7, "after": [f"echo b-after >> {log}"]},
            {"name": "x", "run": [f"echo x >> {log}"], "experiment": True},
            {"name": "c", "run": [f"echo c >> {log}", "exit 3", f"echo never >> {log}"]},
            {"name": "d", "run": [f"echo d >> {log}"]},
        ],
    }, sort_keys=False))
    (tmp_path / "echo_args.py").write_text(
        f"import sys\nopen({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
    )
    return path


def test_recipe_runs_steps_in_order_and_stops_at_a_failure(tmp_path):
    log = tmp_path / "log.txt"
    path = write_recipe(tmp_path, log)
    script = REPO / "train" / "recipe.py"
    result = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 3 and "step c failed" in result.stderr
    assert log.read_text().splitlines() == [
        "a", "--width 64 --flag true --sizes 1 2 --lr 0.0001 --seed 7", "b-after", "c"
    ]
    log.unlink()
    result = subprocess.run([sys.executable, str(script), str(path), "--from", "b", "--until", "b", "--dry-run"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not log.exists()
    assert result.stdout.splitlines() == [
        "# b", f"python {tmp_path / 'echo_args.py'} --width 64 --flag true --sizes 1 2 --lr 0.0001 --seed 7",
        f"echo b-after >> {log}",
    ]
    result = subprocess.run([sys.executable, str(script), str(path), "--only", "b", "--launch", "accelerate launch",
                             "--dry-run"], capture_output=True, text=True, timeout=60)
    assert result.stdout.splitlines()[1].startswith(f"accelerate launch {tmp_path / 'echo_args.py'} --width 64")
    result = subprocess.run([sys.executable, str(script), str(path), "--only", "x", "--only", "d"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and log.read_text().splitlines() == ["x", "d"]
    result = subprocess.run([sys.executable, str(script), str(path), "--from", "nope"], capture_output=True, text=True)
    assert result.returncode == 2 and "no step 'nope'" in result.stderr
