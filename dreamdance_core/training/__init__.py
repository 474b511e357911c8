"""Training code of the DreamDance stages, importable as a library (tests, benches, other launchers).

``train/*.py`` are the command-line entry points (``python train/stage1.py ...`` from the repository root); each
calls the ``cli`` of a module here:

- :mod:`.common`: config files + command-line options, the accelerator, checkpoints with exact resume, the data
  loader, the training loop, validation grids (knows no DreamDance model);
- :mod:`.stage1`: Stage 1 (geometry diffusion), the paper's three steps;
- :mod:`.stage2`: Stage 2 (cross-domain controller + SVD ControlNet), EDM training as SVD's;
- :mod:`.prepare_data`: videos -> the dataset layout of :mod:`dreamdance_core.dataset`, and validation.

Nothing here runs at import time, and nothing outside this package imports it (the nodes never do); heavy
dependencies (accelerate, yaml) are imported by these modules only.
"""
