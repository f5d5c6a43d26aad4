"""eegmamba-train / eegmamba-eval end to end on synthetic EDF files (tiny model, 2 epochs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from eegmamba.checkpoint import load_checkpoint
from eegmamba.data.dataset import build_windows
from eegmamba.profiles import Profile
from eegmamba.training import cli_eval, cli_train
from eegmamba.training.trainer import predict_proba

from .conftest import TRAIN_ARGS, write_edf


@pytest.fixture(scope="module")
def run(syn, tmp_path_factory, capsys_module=None):
    out = tmp_path_factory.mktemp("run") / "cv"
    rc = cli_train.main(["--profile", syn["profile"], "--data", syn["data"], "--out", str(out),
                         "--folds", "5", "--seed", "7", *TRAIN_ARGS])
    assert rc == 0
    return out


def test_outputs_and_metadata(run, syn):
    res = json.loads((run / "results.json").read_text())
    assert res["n_folds"] == 3 and "only 3 subjects for 5 folds" in res["folds_note"][0]
    task = res["tasks"]["syn"]
    tested = [s for f in task["folds"] for s in f["test_subjects"]]
    assert sorted(tested) == ["subjA", "subjB", "subjC"]  # subject-disjoint, each tested once
    for f in task["folds"]:
        assert set(f["test_subjects"]).isdisjoint(
            json.loads((run / "folds" / f"fold_{f['fold']}" / "checkpoint" / "model.json").read_text())
            ["metadata"]["training"]["trained_on_subjects"])
        assert 0 <= f["model"]["acc"] <= 1 and f["baseline"] is not None
    for who in ("model", "baseline"):
        assert set(task["summary"][who]) == {"acc", "balanced_acc", "auroc", "f1_weighted", "kappa"}
    assert task["baseline_name"] == "band power+LR"
    assert set(task["per_subject"]) == {"subjA", "subjB", "subjC"}
    report = (run / "report.md").read_text()
    assert "| mean ± std |" in report and "band power+LR ACC" in report
    for png in ("confusion_syn.png", "per_subject_syn.png", "learning_curves.png"):
        assert (run / png).stat().st_size > 1000 and f"({png})" in report
    model, meta = load_checkpoint(run / "final")
    md = meta["metadata"]
    assert md["ch_names"] == ["C1", "C2"] and md["class_names"] == ["a", "b"] and md["sfreq"] == 200.0
    assert md["window_s"] == 1.0 and md["preprocessing"]["filter"]["l_freq"] == 1.0
    assert md["preprocessing"]["resampler"]["lookahead_samples"] == 0
    assert Profile.from_dict(md["profile"]).name == "syn"
    tr = md["training"]
    assert tr["seed"] == 7 and tr["trained_on_subjects"] == ["subjA", "subjB", "subjC"]
    assert len(tr["files"]["syn"]) == 3 and all(len(f["sha256"]) == 64 for f in tr["files"]["syn"])
    assert "--folds 5" in tr["command"] and tr["versions"]["torch"] == torch.__version__
    assert res["final"]["epochs"] >= 1 and not list(run.rglob("state.pt"))


def test_fold_checkpoint_reload_gives_identical_predictions(run, syn):
    fold = json.loads((run / "folds" / "fold_1" / "result.json").read_text())["tasks"]["syn"]
    model, meta = load_checkpoint(run / "folds" / "fold_1" / "checkpoint")
    ws = build_windows(syn["data"], Profile.from_dict(meta["metadata"]["profile"]))
    keep = np.isin(ws.subjects, fold["test_subjects"])
    proba = predict_proba(model, ws.X[keep], "syn", torch.device("cpu"))
    assert np.array_equal(ws.y[keep], fold["y_true"])
    np.testing.assert_allclose(proba, np.asarray(fold["proba"]), atol=1e-5)


def test_eval_cli_reproduces_fold_metrics(run, syn, tmp_path, capsys):
    fold = json.loads((run / "folds" / "fold_1" / "result.json").read_text())["tasks"]["syn"]
    files = [f"{syn['data']}/{s}.edf" for s in fold["test_subjects"]]
    out = tmp_path / "eval.json"
    assert cli_eval.main(["--checkpoint", str(run / "folds" / "fold_1" / "checkpoint"),
                          "--data", *files, "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    for m in ("acc", "balanced_acc", "f1_weighted", "auroc", "kappa"):
        assert res["metrics"][m] == pytest.approx(fold["model"][m], abs=1e-6)
    assert "ACC" in capsys.readouterr().out


def test_eval_rejects_channel_mismatch(run, tmp_path, capsys):
    bad = write_edf(tmp_path / "other.edf", seed=9, ch_names=("X1", "X2"))
    rc = cli_eval.main(["--checkpoint", str(run / "final"), "--data", str(bad)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "C1" in err and "X1" in err  # names the missing and the available channels


def test_resume_after_interrupt_matches_uninterrupted_run(run, syn, tmp_path):
    from eegmamba.training.experiment import Experiment, RunConfig, TaskInput
    from eegmamba.training.trainer import TrainConfig

    cfg = RunConfig((TaskInput(syn["profile"], (syn["data"],)),), str(tmp_path / "r"), folds=5,
                    variant="eegmamba_tiny", train=TrainConfig(epochs=2, batch_size=16, patience=5, seed=7),
                    final=False, baseline=False)
    with pytest.raises(KeyboardInterrupt):  # "Ctrl-C" after the first epoch of fold 2
        Experiment(cfg, on_epoch_end=lambda e, rec, n=[0]: n.append(1) or len(n) == 4).run()
    assert (tmp_path / "r" / "folds" / "fold_2" / "state.pt").is_file()
    assert (tmp_path / "r" / "folds" / "fold_1" / "result.json").is_file()
    res = Experiment(cfg, resume=True).run()
    ref = json.loads((run / "results.json").read_text())
    for a, b in zip(res["tasks"]["syn"]["folds"], ref["tasks"]["syn"]["folds"]):
        assert a["model"] == b["model"] and a["best_epoch"] == b["best_epoch"]


@pytest.mark.parametrize("case", ["unreadable", "one_subject", "no_labels", "existing_out", "no_data"])
def test_user_errors_are_one_line_exit_2(case, syn, tmp_path, capsys):
    args = ["--profile", syn["profile"], "--out", str(tmp_path / "o"), *TRAIN_ARGS]
    if case == "unreadable":
        bad = tmp_path / "broken.edf"
        bad.write_bytes(b"not an edf file at all")
        args += ["--data", str(bad)]
        expect = "cannot read recording"
    elif case == "one_subject":
        args += ["--data", f"{syn['data']}/subjA.edf"]
        expect = "at least 2 subjects"
    elif case == "no_labels":
        args += ["--data", str(write_edf(tmp_path / "subjZ.edf", seed=1, classes=("x", "y")))]
        expect = "no labelled windows"
    elif case == "existing_out":
        (tmp_path / "o").mkdir()
        (tmp_path / "o" / "run.json").write_text("{}")
        args += ["--data", syn["data"]]
        expect = "already holds a run"
    else:
        expect = "give one --data per --profile"
    assert cli_train.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expect in err and "Traceback" not in err
