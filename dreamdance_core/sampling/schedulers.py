"""The scheduler choice of each stage: a small named set of diffusers schedulers, each built with ``from_config`` of the
stage's own scheduler config, so every choice keeps the noise schedule the model was trained with.

Stage 1 (SD1.5 noise schedule, ``models.stage1.SD15_NOISE_SCHEDULE`` or the model's own): the discrete-time
schedulers the AnimateAnyone family and SD1.5 users know. Every one passes the model an integer training timestep and
a latent at that timestep's noise level (``scale_model_input``), so the sampler's previews need no scheduler internals.

Stage 2 (SVD's ``EulerDiscreteScheduler`` config: Karras sigmas 0.002..700, v-prediction, continuous timesteps
``0.25 * log(sigma)``): only schedulers that condition SVD's UNet as it was trained - the timestep the UNet sees is
``0.25 * log(sigma)`` and its input is ``x / sqrt(sigma^2 + 1)``. diffusers' ``HeunDiscreteScheduler``,
``EulerAncestralDiscreteScheduler`` and ``DPMSolverMultistepScheduler`` ignore ``timestep_type="continuous"`` and
``sigma_max`` (they would give the UNet discrete timesteps and a noise range capped near 14.6), so they are not
offered; the EDM schedulers are, with ``sigma_data = 1`` - the preconditioning SVD's Euler v-prediction implies
(``c_skip = 1 / (sigma^2 + 1)``, ``c_out = -sigma / sqrt(sigma^2 + 1)``, ``c_in = 1 / sqrt(sigma^2 + 1)``).

Names are plain strings so nodes and the command line can list them without importing diffusers.
"""

from __future__ import annotations

from typing import Mapping

# name -> (diffusers class, overrides of the stage's config); the first entry is the stage's default
STAGE1_SCHEDULERS: dict[str, tuple[str, dict]] = {
    "ddim": ("DDIMScheduler", {}),  # the AnimateAnyone family's sampler; eta 0 (deterministic)
    "euler": ("EulerDiscreteScheduler", {}),
    "euler ancestral": ("EulerAncestralDiscreteScheduler", {}),  # stochastic: fresh noise from the seed every step
    "dpm++ 2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
}
STAGE2_SCHEDULERS: dict[str, tuple[str, dict]] = {
    "euler": ("EulerDiscreteScheduler", {}),  # SVD's own (StableVideoDiffusionPipeline)
    "dpm++ 2m karras": (
        "EDMDPMSolverMultistepScheduler",
        {"sigma_data": 1.0, "sigma_schedule": "karras", "algorithm_type": "dpmsolver++", "solver_order": 2},
    ),
    "dpm++ 2m sde karras": (  # stochastic: fresh noise from the seed every step
        "EDMDPMSolverMultistepScheduler",
        {"sigma_data": 1.0, "sigma_schedule": "karras", "algorithm_type": "sde-dpmsolver++", "solver_order": 2},
    ),
}
STAGE1_DEFAULT = next(iter(STAGE1_SCHEDULERS))
STAGE2_DEFAULT = next(iter(STAGE2_SCHEDULERS))


def check_scheduler_name(name: str, table: Mapping[str, tuple[str, dict]], stage: str) -> str:
    if name not in table:
        raise ValueError(f"unknown {stage} scheduler {name!r}; choose one of {list(table)}")
    return name


def _build(name: str, table: Mapping[str, tuple[str, dict]], stage: str, config: Mapping):
    import inspect

    import diffusers

    class_name, overrides = table[check_scheduler_name(name, table, stage)]
    cls = getattr(diffusers, class_name)
    accepted = inspect.signature(cls.__init__).parameters  # drop the other class's keys (silences diffusers' warning)
    config = {key: value for key, value in dict(config).items() if key in accepted}
    return cls.from_config({**config, **overrides})


def stage1_scheduler(name: str = STAGE1_DEFAULT, noise_schedule: Mapping | None = None):
    """A Stage-1 scheduler by name over ``noise_schedule`` (the model's training schedule; default SD1.5's)."""
    from ..models.stage1 import SD15_NOISE_SCHEDULE

    return _build(name, STAGE1_SCHEDULERS, "Stage-1", {**SD15_NOISE_SCHEDULE, **(noise_schedule or {})})


def stage2_scheduler(name: str, scheduler_config: Mapping):
    """A Stage-2 scheduler by name over SVD's scheduler config (``SVDComponents.scheduler_config``)."""
    return _build(name, STAGE2_SCHEDULERS, "Stage-2", scheduler_config)
