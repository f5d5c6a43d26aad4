"""The pretraining loop: it learns on real EEG, and an interrupted run resumes to the same weights."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from eegmamba.eegm2.loss import ReconLoss, ReconLossConfig
from eegmamba.pretrain.data import load_unlabeled, pretrain_profile
from eegmamba.pretrain.loop import Pretrainer, PretrainConfig, evaluate
from eegmamba.registry import create_model

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def chb01_windows(shared_data):
    """chb01_03's first 41 s (real CHB-MIT EEG), seizure-profile channels, 2-s windows every 1 s."""
    profile = pretrain_profile(base="seizure", window_s=2.0, hop_s=1.0)
    return load_unlabeled([shared_data / "seizure" / "chb01_03_NonSeizure_41s.edf"], profile)


def test_loss_falls_well_below_start_on_real_eeg(chb01_windows):
    data = chb01_windows
    # 41 s, 2-s windows every 1 s: 40, the last one included (the resampler has no look-ahead)
    assert len(data) == 40 and data.X.shape[1:] == (22, 400)
    torch.manual_seed(0)
    model = create_model("eegm2_tiny", n_chans=22)
    cfg = PretrainConfig(epochs=100, batch_size=8, lr=5e-3, max_steps=40)
    loss = ReconLoss(cfg.loss)
    before = evaluate(model, data.X, loss, CPU)
    history = Pretrainer(model, data, cfg, CPU).fit()
    after = evaluate(model, data.X, loss, CPU)
    # seen: total 535 -> 121 (23 %), L1 0.87 -> 0.43 in 40 steps
    assert after["total"] < 0.4 * before["total"]
    assert after["l1"] < 0.65 * before["l1"]
    assert history[-1]["step"] == 40
    assert history[-1]["val_total"] < 0.6 * history[0]["val_total"]  # held-out last part in time


class _InterruptAt:
    """Progress hook that sends this process a real SIGINT after ``step`` steps."""

    def __init__(self, step: int) -> None:
        self.step, self.n = step, 0

    def start_epoch(self, epoch, done_steps):
        pass

    def advance(self, loss, rate):
        self.n += 1
        if self.n == self.step:
            os.kill(os.getpid(), signal.SIGINT)

    def end_epoch(self, record):
        pass


@pytest.mark.parametrize("mask_ratio", [0.0, 0.5])
def test_ctrl_c_then_resume_equals_uninterrupted(chb01_windows, tmp_path, mask_ratio):
    cfg = PretrainConfig(epochs=2, batch_size=8, lr=2e-3, seed=1,
                         loss=ReconLossConfig(mask_ratio=mask_ratio))

    def trainer(progress=None):
        torch.manual_seed(1)
        model = create_model("eegm2_tiny", n_chans=22, base=8, headdim=8)
        return Pretrainer(model, chb01_windows, cfg, CPU, tmp_path / "state.pt", progress)

    ref = trainer()
    ref.fit()
    steps_per_epoch = ref.steps_per_epoch
    assert steps_per_epoch >= 3

    first = trainer(_InterruptAt(steps_per_epoch + 1))  # mid second epoch
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    assert first.global_step == steps_per_epoch + 1 and first.epoch == 1
    again = trainer()
    again.load_state(tmp_path / "state.pt")
    again.fit()
    assert again.global_step == ref.global_step
    for k, v in ref.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k]), k
    assert [h["val_total"] for h in again.history] == [h["val_total"] for h in ref.history]
