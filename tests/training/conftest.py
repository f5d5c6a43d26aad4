"""Synthetic recordings (eegmamba/testing/synthetic_edf.py: class-dependent rhythms, NOT real EEG) and a
small profile for fast training tests with the tiny model variant."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]

PROFILE_YAML = """\
name: syn
task: seizure
description: synthetic two-class test profile (band power baseline)
window: {length_s: 1.0, hop_s: 0.5, train_hop_s: 0.5}
filter: {l_freq: 1.0, h_freq: 40.0}
channels: {names: [C1, C2]}
classes: [a, b]
labels:
  - {description: a, class: a}
  - {description: b, class: b}
"""

TRAIN_ARGS = ["--variant", "eegmamba_tiny", "--epochs", "2", "--batch-size", "16", "--patience", "5"]


def _tool():
    from eegmamba.testing import synthetic_edf
    return synthetic_edf


def write_edf(path: Path, seed: int, ch_names=("C1", "C2"), duration_s: float = 12.0,
              classes=("a", "b"), sfreq: float = 200.0) -> Path:
    """A synthetic EDF+ with 2 s segments cycling through ``classes``."""
    return _tool().make_synthetic_edf(path, len(ch_names), sfreq, duration_s, list(classes),
                                      ch_names=list(ch_names), seed=seed, segment_s=2.0)


@pytest.fixture(scope="session")
def syn(tmp_path_factory) -> dict:
    """``{"profile": path, "data": folder of 3 subjects' files, "dir": root}``."""
    root = tmp_path_factory.mktemp("syn")
    data = root / "data"
    data.mkdir()
    for i, subj in enumerate(("subjA", "subjB", "subjC")):
        write_edf(data / f"{subj}.edf", seed=i + 1)
    prof = root / "syn.yaml"
    prof.write_text(PROFILE_YAML)
    return {"profile": str(prof), "data": str(data), "dir": root}


# The CPU here is shared and has 2 cores: one intra-op thread is much faster than two contended ones.
torch.set_num_threads(1)
