import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")


def pytest_configure(config):
    import torch

    # The test models are tiny: one thread is faster than two threads spin-waiting on a shared 2-core machine.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_everything():
    import torch

    torch.manual_seed(0)
    yield
