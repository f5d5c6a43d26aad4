"""``eegmamba-train --pretrained DIR``: fine-tuning the pretrained EEGM2 encoder through the same
cross-validation, checkpoints and live loader as EEGMamba."""

from __future__ import annotations

import json

import numpy as np
import torch

from eegmamba.checkpoint import load_checkpoint
from eegmamba.pretrain.finetune import load_pretrained
from eegmamba.training.cli_train import main as train_main
from realtime.loop.inference import InferenceEngine

FILES = ("chb01_03_ictal10s.edf", "chb01_03_preictal10s.edf", "chb02_16_ictal10s.edf",
         "chb02_16_preictal10s.edf")


def _train(out, data, pretrained, *extra):
    return train_main(["--profile", "seizure", "--data", *data, "--out", str(out), "--pretrained",
                       str(pretrained), "--epochs", "1", "--batch-size", "8", "--no-final", *extra])


def test_frozen_finetune_keeps_the_pretrained_encoder(tmp_path, shared_data, pretrained_dir):
    data = [str(shared_data / "seizure" / f) for f in FILES]
    assert _train(tmp_path / "run", data, pretrained_dir, "--freeze", "frozen") == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert len(results["folds"]) == 2
    ckpt = tmp_path / "run" / "folds" / "fold_1" / "checkpoint"
    model, meta = load_checkpoint(ckpt)
    assert meta["variant"] == "eegm2_classifier"
    assert meta["metadata"]["training"]["pretrained"]["freeze"] == "frozen"
    pre = load_pretrained(pretrained_dir)
    for k, v in model.encoder.state_dict().items():
        assert torch.equal(v, pre.state_dict[k]), k  # frozen: the encoder did not move
    # the live loop loads it like any single-task checkpoint
    engine = InferenceEngine("cpu")
    m = engine.load(ckpt)
    assert m.class_names == ("background", "seizure") and m.n_times == 800
    probs = engine.infer(m.key, np.zeros((1, m.n_chans, m.n_times), np.float32))
    assert probs.shape == (1, 2) and abs(probs.sum() - 1) < 1e-6


def test_pretrained_encoder_must_fit_the_profile(tmp_path, shared_data, pretrained_dir, capsys):
    mi = [str(shared_data / "motor_imagery" / "S001R04.edf"), str(shared_data / "motor_imagery" /
                                                                   "S088R10.edf")]
    rc = train_main(["--profile", "motor_imagery_5class", "--data", *mi, "--out", str(tmp_path / "x"),
                     "--pretrained", str(pretrained_dir), "--epochs", "1"])
    assert rc == 2
    assert "pretrained encoder" in capsys.readouterr().err
