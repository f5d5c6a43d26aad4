"""Shared fixtures: the path to the real recordings in ``../shared/data`` and torch thread limits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# One intra-op thread: the 2-core CI machine also runs LSL threads, replay threads and subprocesses
# during the tests; more torch threads only contend with them.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real EEG recordings); skip with a reason where it is missing."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared recordings not found at {SHARED_DATA}")
    return SHARED_DATA
