"""Turn a folder of videos into the DreamDance dataset layout, and validate dataset folders.

The command line of :mod:`dreamdance_core.training.prepare_data`, where the estimators and usage are documented
(``python train/prepare_data.py --help`` lists the options). Run it with the project's environment, where
``dreamdance_core`` is installed.
"""

import sys

from dreamdance_core.training.prepare_data import cli, main, parse_args

__all__ = ["cli", "main", "parse_args"]

if __name__ == "__main__":
    sys.exit(cli())
