"""Train DreamDance Stage 2 (Cross-domain Controlled Video Diffusion): controller + SVD ControlNet, SVD frozen.

The command line of :mod:`dreamdance_core.training.stage2`, where the options, paper defaults and usage are documented
(``python train/stage2.py --help`` lists them). Run from the repository root with the project's environment, where
``dreamdance_core`` is installed; ``accelerate launch train/stage2.py ...`` works as well.
"""

import sys

from dreamdance_core.training.stage2 import cli, main, parse_args

__all__ = ["cli", "main", "parse_args"]

if __name__ == "__main__":
    sys.exit(cli())
