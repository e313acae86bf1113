"""Shared test fixtures."""
from __future__ import annotations

import pytest


@pytest.fixture
def torch_one_thread():
    """Run a test with one torch thread (small networks: faster, and no oversubscription on CI)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
