"""``eegmamba-train --model``: any registered model through the one engine into a checkpoint that
``eegmamba-eval`` and the live loop serve like an EEGMamba one, and several models compared on the
same folds (synthetic EDFs, tiny budgets: plumbing and equality, not accuracy)."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch

from eegmamba.checkpoint import load_checkpoint, save_checkpoint
from eegmamba.data.dataset import build_windows
from eegmamba.profiles import Profile, load_profile
from eegmamba.training import cli_eval, cli_train
from eegmamba.training.engine.predict import predict_proba

from .conftest import write_edf

pytestmark = pytest.mark.timeout(300)

SIZES = ["--epochs", "2", "--batch-size", "16", "--patience", "5", "--seed", "3"]


@pytest.fixture(scope="module")
def eegnet_run(syn, tmp_path_factory):
    out = tmp_path_factory.mktemp("eegnet") / "cv"
    assert cli_train.main(["--profile", syn["profile"], "--data", syn["data"], "--out", str(out),
                           "--model", "eegnet", *SIZES]) == 0
    return out


@pytest.fixture(scope="module")
def several_run(syn, tmp_path_factory):
    out = tmp_path_factory.mktemp("several") / "cv"
    assert cli_train.main(["--profile", syn["profile"], "--data", syn["data"], "--out", str(out),
                           "--model", "eegmamba_tiny,eegnet", "--no-baseline", *SIZES]) == 0
    return out


def test_eegnet_trains_into_a_checkpoint_with_the_same_metadata(eegnet_run, syn):
    res = json.loads((eegnet_run / "results.json").read_text())
    assert res["model"] == "eegnet" and res["model_choice"] is None
    assert res["run"]["config"]["variant"] == "eegnet" and "models" not in res["run"]["config"]
    task = res["tasks"]["syn"]
    assert task["model"] == "eegnet" and len(task["folds"]) == 3
    assert all(0 <= f["model"]["balanced_acc"] <= 1 for f in task["folds"])
    assert "# Cross-validation report: eegnet" in (eegnet_run / "report.md").read_text()
    model, meta = load_checkpoint(eegnet_run / "final")  # through the registry, by name
    assert meta["variant"] == "eegnet" and type(model).__name__ == "EEGNet"
    spec = model.config.tasks[0]
    assert (spec.name, spec.n_chans, spec.n_times, spec.class_names) == ("syn", 2, 200, ("a", "b"))
    md = meta["metadata"]
    assert Profile.from_dict(md["profile"]).name == "syn" and md["class_names"] == ["a", "b"]
    assert md["training"]["model"] == "eegnet"
    assert md["training"]["trained_on_subjects"] == ["subjA", "subjB", "subjC"]
    # the engine applied EEGNet's max-norm after every step: the dense rows (initialised at norm
    # ~0.58) within 0.25, up to the EMA's share of the initial weights (~1e-4 after 8 steps)
    rows = model.dense.weight.detach().norm(dim=1)
    assert float(rows.max()) <= 0.25 + 1e-3


def test_eegnet_fold_checkpoint_through_eegmamba_eval(eegnet_run, syn, tmp_path):
    fold = json.loads((eegnet_run / "folds" / "fold_2" / "result.json").read_text())
    assert fold["model"] == "eegnet"
    t = fold["tasks"]["syn"]
    out = tmp_path / "eval.json"
    files = [f"{syn['data']}/{s}.edf" for s in t["test_subjects"]]
    assert cli_eval.main(["--checkpoint", str(eegnet_run / "folds" / "fold_2" / "checkpoint"),
                          "--data", *files, "--out", str(out)]) == 0
    got = json.loads(out.read_text())["metrics"]
    for m in ("acc", "balanced_acc", "auroc"):
        assert got[m] == pytest.approx(t["model"][m], abs=1e-6)


def test_eegnet_checkpoint_runs_live_as_offline(eegnet_run, syn):
    """The trained EEGNet checkpoint in the real live Session (in-process replay on LSL loopback):
    every window is decided or counted as dropped (the first ones as ``unverified``: units and rate
    are checked on the stream's first 2 s; ``stale`` when the shared CPU falls behind), and every
    labelled offline window decided live has the offline probabilities."""
    from realtime.session import Session, SessionOptions

    torch.set_num_threads(1)
    ck = eegnet_run / "final"
    model, meta = load_checkpoint(ck)
    profile = Profile.from_dict(meta["metadata"]["profile"])
    recording = f"{syn['data']}/subjB.edf"
    ws = build_windows([recording], profile, hop_s=profile.window.hop_s)
    offline = predict_proba(model, ws.X, "syn")
    decisions = []
    session = Session(SessionOptions(profiles=[syn["profile"]], checkpoints=[str(ck)],
                                     replay=recording, speed=1.0, device="cpu"))
    try:
        session.loop.on_decision = decisions.append
        end = time.monotonic() + 60
        while not session.finished() and time.monotonic() < end:
            session.loop.run(0.2)
        t0, rate = session.replay.t0, session.replay.speed
        pipe = session.loop.outputs[0].pipeline
        drops, n_windows = dict(pipe.all_drops()), pipe.n_windows
    finally:
        session.close()
    # n_windows: windows cut after the stream was verified; each is decided or dropped as stale
    assert set(drops) <= {"unverified", "stale"}
    assert n_windows == len(decisions) + drops.get("stale", 0)
    starts = {round((d.t_start - t0) * rate, 3): d for d in decisions}
    keys = np.round(ws.t_start, 3)
    keep = np.array([k in starts for k in keys])
    assert keep.sum() >= 6, (sorted(starts), keys.tolist(), drops)  # of 18; the rest counted
    live = np.array([list(starts[k].probs.values()) for k in keys[keep]])
    assert np.abs(live - offline[keep]).max() <= 1e-4
    assert [starts[k].label for k in keys[keep]] == [profile.classes[i] for i in offline[keep].argmax(1)]


def test_several_models_report_names_the_winner_and_serve_it(several_run):
    res = json.loads((several_run / "results.json").read_text())
    c = res["model_choice"]
    assert c["models"] == ["eegmamba_tiny", "eegnet"] and c["metric"] == "balanced_acc"
    # recompute from each model's own fold results: same folds, winner = highest mean
    means = {}
    for m in c["models"]:
        folds = [json.loads((several_run / "models" / m / "folds" / f"fold_{k}" / "result.json")
                            .read_text()) for k in (1, 2, 3)]
        assert [f["tasks"]["syn"]["test_subjects"] for f in folds] == [
            t["test_subjects"] for t in res["tasks"]["syn"]["folds"]]
        scores = [f["tasks"]["syn"]["model"]["balanced_acc"] for f in folds]
        assert c["summary"][m]["per_fold"] == pytest.approx(scores, abs=1e-6)
        means[m] = float(np.mean(scores))
    best = max(means.values())
    winner = next(m for m in c["models"] if math.isclose(means[m], best, abs_tol=1e-12))
    assert c["winner"] == winner == res["model"] == res["final"]["model"]
    other = next(m for m in c["models"] if m != winner)
    p = c["paired_vs_winner"][other]
    assert p["mean"] == pytest.approx(means[winner] - means[other], abs=1e-6)
    assert p["winner_better"] + p["other_better"] + p["tied"] == p["n"] == 3
    report = (several_run / "report.md").read_text()
    assert "## Which model won on these folds" in report and f"Winner: **{winner}**" in report
    _, meta = load_checkpoint(several_run / "final")
    assert meta["variant"] == winner and meta["metadata"]["training"]["model_choice"]["winner"] == winner


def test_conformer_is_a_registered_servable_model(tmp_path):
    from eegmamba import TaskSpec, create_model
    from eegmamba.registry import trainable_models

    assert {"eegnet", "eegconformer", "eegmamba_single", "eegmamba_fb"} <= set(trainable_models())
    assert "eegm2" not in trainable_models()  # an encoder, not a classifier
    p = load_profile("motor_imagery")
    spec = TaskSpec(p.name, p.n_channels, p.window_samples, len(p.classes), p.sfreq,
                    p.channels.names, p.classes)
    torch.manual_seed(0)
    model = create_model("eegconformer", tasks=[spec], depth=1).eval()
    save_checkpoint(tmp_path / "ck", model, {"profile": p.to_dict()})
    again, meta = load_checkpoint(tmp_path / "ck")
    assert meta["variant"] == "eegconformer" and again.config == model.config
    x = torch.randn(2, p.n_channels, p.window_samples)
    with torch.no_grad():
        assert torch.equal(again(x, task=p.name), model(x))


@pytest.mark.parametrize("args,message", [
    (["--model", "no_such_model"], "not a model eegmamba-train can train"),
    (["--model", "eegm2"], "not a model eegmamba-train can train"),
    (["--model", "eegnet,eegnet"], "names a model twice"),
    (["--model", ","], "--model expects NAME"),
    (["--model", "eegnet", "--variant", "eegmamba_tiny"], "not both"),
])
def test_model_user_errors_are_one_line_exit_2(args, message, syn, tmp_path, capsys):
    rc = cli_train.main(["--profile", syn["profile"], "--data", syn["data"], "--out",
                         str(tmp_path / "o"), *SIZES, *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and message in err, err


def test_single_task_model_refuses_two_tasks(syn, tmp_path, capsys):
    other = tmp_path / "other.yaml"
    other.write_text(open(syn["profile"]).read().replace("name: syn", "name: syn2"))
    data2 = tmp_path / "d2"
    data2.mkdir()
    for i, s in enumerate(("subjA", "subjB")):
        write_edf(data2 / f"{s}.edf", seed=10 + i)
    rc = cli_train.main(["--profile", syn["profile"], "--data", syn["data"], "--profile", str(other),
                         "--data", str(data2), "--out", str(tmp_path / "o"), "--model", "eegnet",
                         *SIZES])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "--model eegnet cannot train on syn, syn2" in err


def test_several_models_resume_after_interrupt(several_run, syn, tmp_path):
    """Ctrl-C in the second model's folds, then --resume: the same comparison and winner as the
    uninterrupted run (done folds are kept, the interrupted one continues from its state)."""
    from eegmamba.training.experiment import Experiment, RunConfig, TaskInput
    from eegmamba.training.trainer import TrainConfig

    cfg = RunConfig((TaskInput(syn["profile"], (syn["data"],)),), str(tmp_path / "r"), folds=5,
                    models=("eegmamba_tiny", "eegnet"), baseline=False,
                    train=TrainConfig(epochs=2, batch_size=16, patience=5, seed=3))
    with pytest.raises(KeyboardInterrupt):  # after the first epoch of eegnet's first fold
        Experiment(cfg, on_epoch_end=lambda e, rec, n=[0]: n.append(1) or len(n) == 8).run()
    assert (tmp_path / "r" / "models" / "eegnet" / "folds" / "fold_1" / "state.pt").is_file()
    assert (tmp_path / "r" / "models" / "eegmamba_tiny" / "folds" / "fold_3" / "result.json").is_file()
    res = Experiment(cfg, resume=True).run()
    ref = json.loads((several_run / "results.json").read_text())
    assert res["model_choice"]["winner"] == ref["model_choice"]["winner"]
    for m in cfg.models:
        assert res["model_choice"]["summary"][m]["per_fold"] == ref["model_choice"]["summary"][m]["per_fold"]
