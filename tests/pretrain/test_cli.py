"""``eegmamba-pretrain``: outputs, reload round trip, one-line errors with exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from eegmamba.checkpoint import load_checkpoint
from eegmamba.eegm2.loss import ReconLoss, ReconLossConfig
from eegmamba.pretrain.cli import main
from eegmamba.pretrain.data import load_unlabeled
from eegmamba.pretrain.loop import evaluate
from eegmamba.pretrain.report import read_history_csv
from eegmamba.profiles import Profile
from eegmamba.training.cv import validation_split


def test_outputs_and_metadata(pretrained_dir, chb02_files):
    for f in ("model/model.safetensors", "model/model.json", "encoder/model.safetensors",
              "encoder/model.json", "history.csv", "report.md", "loss_curves.png", "reconstruction.png"):
        assert (pretrained_dir / f).is_file(), f
    meta = json.loads((pretrained_dir / "model" / "model.json").read_text())
    md = meta["metadata"]
    assert meta["variant"] == "eegm2_tiny"
    assert md["ch_names"][14] == "T8-P8" and len(md["ch_names"]) == 22  # seizure profile order
    assert md["sfreq"] == 200.0 and md["window_s"] == 2.0 and md["hop_s"] == 2.0
    assert md["preprocessing"]["filter"]["notch_hz"] == 60.0  # from the seizure profile
    pre = md["pretraining"]
    assert pre["config"]["loss"] == ReconLossConfig().to_dict()
    assert pre["summary"]["steps"] == 4
    assert [f["path"] for f in pre["files"]] == chb02_files
    assert all(len(f["sha256"]) == 64 and f["windows"] > 0 for f in pre["files"])
    enc = json.loads((pretrained_dir / "encoder" / "model.json").read_text())
    assert enc["variant"] == "eegm2_light" and enc["metadata"]["ch_names"] == md["ch_names"]
    hist = read_history_csv(pretrained_dir / "history.csv")
    # epoch 0 = the initial model; 10 training windows / batch 4 = 3 steps per epoch, 4 steps in all
    assert [h["epoch"] for h in hist] == [0, 1, 2] and [h["step"] for h in hist] == [0, 3, 4]
    assert all(hist[1][f"train_{p}"] is not None for p in ("l1", "spectral", "mse", "total"))


def test_reload_gives_identical_outputs(pretrained_dir):
    model, meta = load_checkpoint(pretrained_dir / "model")
    encoder, _ = load_checkpoint(pretrained_dir / "encoder")
    state = torch.load(pretrained_dir / "state.pt", weights_only=True)
    md = meta["metadata"]
    # rebuild the windows from the metadata alone: same profile, same files, same split
    profile = Profile.from_dict(md["profile"])
    data = load_unlabeled([f["path"] for f in md["pretraining"]["files"]], profile)
    cfg = md["pretraining"]["config"]
    split = validation_split(np.arange(len(data)), data.subjects, data.files, data.t_start,
                             profile.window.length_s, cfg["val_frac"], cfg["seed"])
    x = torch.from_numpy(data.X[split.val_idx])
    fresh = type(model)(model.config)
    fresh.load_state_dict(state["best_state"])
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(model(x), fresh(x))
        assert torch.equal(encoder(x), model.encode_levels(x)[-1])
    loss = ReconLoss(ReconLossConfig.from_dict(cfg["loss"]))
    got = evaluate(model, data.X[split.val_idx], loss, torch.device("cpu"), cfg["batch_size"],
                   seed=cfg["seed"] + 7)
    best = md["pretraining"]["summary"]["best_val"]
    assert got["total"] == pytest.approx(best["total"], rel=1e-5)


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_inputs_exit_2(tmp_path, capsys, chb02_files, shared_data):
    junk = tmp_path / "junk.edf"
    junk.write_text("not an EDF file")
    assert main([str(junk), "--out", str(tmp_path / "a")]) == 2
    assert "cannot read recording" in _err(capsys)

    mi = str(shared_data / "motor_imagery" / "S001R03.edf")
    assert main([chb02_files[0], mi, "--out", str(tmp_path / "b")]) == 2
    assert "no channel is common" in _err(capsys)

    assert main([chb02_files[0], "--out", str(tmp_path / "c"), "--window-s", "20"]) == 2
    assert "too few windows" in _err(capsys)

    assert main([chb02_files[0], "--out", str(tmp_path / "d"), "--channels", "FP1-F7,XX9"]) == 2
    assert "missing channel(s) XX9" in _err(capsys)

    assert main([chb02_files[0], "--out", str(tmp_path / "e"), "--variant", "eegm2_light"]) == 2
    assert "encoder only" in _err(capsys)

    assert main([chb02_files[0], "--out", str(tmp_path / "f"), "--mask-ratio", "1.5"]) == 2
    assert "mask_ratio" in _err(capsys)


def test_existing_run_and_resume_mismatch(pretrained_dir, chb02_files, capsys):
    from tests.pretrain.conftest import CLI_ARGS

    assert main([*chb02_files, "--out", str(pretrained_dir), *CLI_ARGS]) == 2
    assert "--resume" in _err(capsys)
    args = [*chb02_files, "--out", str(pretrained_dir), *CLI_ARGS, "--lr", "1e-3", "--resume"]
    assert main(args) == 2
    assert "options differ" in _err(capsys)
