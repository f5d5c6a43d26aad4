"""Shared fixtures: the path to the real recordings in ``../shared/data`` and torch thread limits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Keep the suite polite on 2-core CI machines and deterministic.
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real EEG recordings); skip with a reason where it is missing."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared recordings not found at {SHARED_DATA}")
    return SHARED_DATA
