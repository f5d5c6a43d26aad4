"""One small pretraining run (CLI, tiny variant, 2-s windows, 3 steps) shared by the tests here."""

from __future__ import annotations

import pytest

from eegmamba.pretrain.cli import main

# CHB-MIT chb02 crops (10 s each, 23 channels at 256 Hz): two files, one subject
CHB02 = ("chb02_16_ictal10s.edf", "chb02_16_preictal10s.edf", "chb02_19_ictal10s.edf")
CLI_ARGS = ("--variant", "eegm2_tiny", "--window-s", "2", "--profile", "seizure",
            "--batch-size", "4", "--max-steps", "4", "--epochs", "2", "--seed", "3")


@pytest.fixture(scope="session")
def chb02_files(shared_data):
    return [str(shared_data / "seizure" / f) for f in CHB02]


@pytest.fixture(scope="session")
def pretrained_dir(tmp_path_factory, chb02_files):
    """A finished ``eegmamba-pretrain`` output folder (seizure profile channels, 200 Hz)."""
    out = tmp_path_factory.mktemp("pretrain") / "run"
    assert main([*chb02_files, "--out", str(out), *CLI_ARGS]) == 0
    return out
