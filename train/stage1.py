"""Train DreamDance Stage 1 (Mutually Aligned Geometry Diffusion) in the paper's three steps.

The command line of :mod:`dreamdance_core.training.stage1`, where the options, paper defaults and usage are documented
(``python train/stage1.py --help`` lists them). Run from the repository root with the project's environment, where
``dreamdance_core`` is installed; ``accelerate launch train/stage1.py ...`` works as well.
"""

import sys

from dreamdance_core.training.stage1 import cli, main, parse_args

__all__ = ["cli", "main", "parse_args"]

if __name__ == "__main__":
    sys.exit(cli())
