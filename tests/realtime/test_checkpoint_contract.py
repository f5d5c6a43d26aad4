"""The checkpoint is the source of truth live (issue 19, "The contract").

A tiny model is really trained (``eegmamba-train``, 1 epoch) on synthetic recordings with a profile
whose band-pass (4-30 Hz) and channel order ([C2, C1]) differ from the YAML a user might name beside
it (1-40 Hz, [C1, C2]). Live, ``--profile YAML --checkpoint CK`` is refused with one line naming both;
``--checkpoint CK`` alone runs the stored profile and gives the offline probabilities of the stored
profile; ``--profile-over-checkpoint`` runs the YAML (the offline probabilities of the YAML) and the
dashboard says so. Live and offline are compared as in ``test_demo_accuracy.py``: the decision at
each offline window's start time, probabilities within 1e-4.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

from eegmamba.checkpoint import OVERRIDE_FLAG, load_checkpoint
from eegmamba.data.dataset import build_windows
from eegmamba.profiles import load_profile
from eegmamba.testing.synthetic_edf import make_synthetic_edf
from eegmamba.training import cli_train
from eegmamba.training.trainer import predict_proba
from realtime.screen.dashboard import render
from realtime.session import Session, SessionOptions

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[2]
SPEED = 2.0  # 12 s of EEG in 6 s

_PROFILE = """\
name: syn
window: {{length_s: 1.0, hop_s: 0.5, train_hop_s: 0.5}}
filter: {{l_freq: {l}, h_freq: {h}}}
channels: {{names: [{names}]}}
classes: [a, b]
labels:
  - {{description: a, class: a}}
  - {{description: b, class: b}}
"""


def _edf(path: Path, seed: int) -> Path:
    """12 s at 200 Hz, channels C1, C2, 2-s segments of classes a, b (synthetic rhythms)."""
    return make_synthetic_edf(path, 2, 200.0, 12.0, ["a", "b"], ch_names=["C1", "C2"], seed=seed,
                              segment_s=2.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A checkpoint trained with 4-30 Hz and channels [C2, C1]; a YAML with 1-40 Hz and [C1, C2];
    a recording of a subject it was not trained on (channels C1, C2 in the file)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("contract")
    data = root / "data"
    data.mkdir()
    for i, subject in enumerate(("subjA", "subjB")):
        _edf(data / f"{subject}.edf", seed=i + 1)
    (root / "trained.yaml").write_text(_PROFILE.format(l=4.0, h=30.0, names="C2, C1"))
    (root / "other.yaml").write_text(_PROFILE.format(l=1.0, h=40.0, names="C1, C2"))
    rc = cli_train.main(["--profile", str(root / "trained.yaml"), "--data", str(data),
                         "--out", str(root / "run"), "--folds", "2", "--epochs", "1",
                         "--batch-size", "16", "--variant", "eegmamba_tiny", "--no-baseline",
                         "--seed", "3"])
    assert rc == 0
    return {"checkpoint": root / "run" / "final", "yaml": root / "other.yaml",
            "trained_yaml": root / "trained.yaml", "recording": _edf(root / "subjC.edf", seed=9)}


def _live(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "realtime.cli_live", *args], capture_output=True,
                          text=True, timeout=180, cwd=REPO)


def _live_and_offline(opts: SessionOptions, offline_profile, checkpoint) -> tuple:
    """Run ``opts`` (a finite replay) to its end; return (session profile, snapshot, live
    probabilities at the offline windows' starts, offline probabilities of ``offline_profile`` of
    the same windows)."""
    decisions = []
    session = Session(opts)
    try:
        session.loop.on_decision = decisions.append
        end = time.monotonic() + 60
        while not session.finished() and time.monotonic() < end:
            session.loop.run(0.2)
        snap = session.snapshot()
        t0, rate = session.replay.t0, session.replay.speed
        profile = session.profiles[0]
    finally:
        session.close()
    ws = build_windows([opts.replay], offline_profile, hop_s=offline_profile.window.hop_s)
    model, _ = load_checkpoint(checkpoint, device="cpu")
    offline = predict_proba(model, ws.X, model.config.tasks[0].name, torch.device("cpu"))
    starts = {round((d.t_start - t0) * rate, 3): d for d in decisions}
    offline_starts = np.round(ws.t_start, 3)
    decided = np.array([s in starts for s in offline_starts])
    # a window before the stream's units and rate were checked (``unverified``) or one the loop had
    # no time for (``stale``: newest window first) is counted as dropped, never lost
    n_dropped = snap.drops.get("unverified", 0) + snap.drops.get("stale", 0)
    assert (~decided).sum() <= n_dropped, (offline_starts[~decided], snap.drops)
    assert decided.sum() > 10
    live = np.array([list(starts[s].probs.values()) for s in offline_starts[decided]])
    return profile, snap, live, offline[decided]


def test_a_profile_that_differs_from_the_checkpoint_is_refused_in_one_line(trained):
    r = _live("--profile", str(trained["yaml"]), "--checkpoint", str(trained["checkpoint"]),
              "--replay", str(trained["recording"]), "--no-dashboard", "--device", "cpu")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and " #" not in r.stdout  # refused before any decision
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("eegmamba-live: error")]
    assert len(errors) == 1, r.stderr
    line = errors[0]
    assert "channels.names [C2, C1] in the checkpoint, [C1, C2] in the profile" in line
    assert "filter.l_freq 4 in the checkpoint, 1 in the profile" in line
    assert "filter.h_freq 30 in the checkpoint, 40 in the profile" in line
    assert OVERRIDE_FLAG in line and "without --profile" in line
    assert "window" not in line and "classes" not in line  # only the fields that differ


def test_the_checkpoint_alone_runs_its_stored_profile_and_gives_the_offline_probabilities(trained):
    stored = load_profile(trained["trained_yaml"])
    opts = SessionOptions(checkpoints=[str(trained["checkpoint"])], replay=str(trained["recording"]),
                          speed=SPEED, device="cpu")
    profile, snap, live, offline = _live_and_offline(opts, stored, trained["checkpoint"])
    assert profile.channels.names == ("C2", "C1") and profile.filter.l_freq == 4.0
    assert profile == stored
    assert snap.notices == ()  # nothing overridden, nothing to report
    assert np.abs(live - offline).max() < 1e-4
    # the YAML's preprocessing gives other numbers through the same model: the comparison can fail
    model, _ = load_checkpoint(trained["checkpoint"], device="cpu")
    p_stored, p_yaml = (predict_proba(model, build_windows([trained["recording"]], p, hop_s=0.5).X,
                                      "syn", torch.device("cpu"))
                        for p in (stored, load_profile(trained["yaml"])))
    assert p_stored.shape == p_yaml.shape and np.abs(p_stored - p_yaml).max() > 1e-3


def test_the_override_runs_the_yaml_and_the_dashboard_says_so(trained):
    yaml_profile = load_profile(trained["yaml"])
    opts = SessionOptions(profiles=[str(trained["yaml"])], checkpoints=[str(trained["checkpoint"])],
                          replay=str(trained["recording"]), speed=SPEED, device="cpu",
                          profile_over_checkpoint=True)
    profile, snap, live, offline = _live_and_offline(opts, yaml_profile, trained["checkpoint"])
    assert profile == yaml_profile
    assert np.abs(live - offline).max() < 1e-4  # the YAML's windows through the checkpoint's model
    (level, line), = snap.notices
    assert level == "warning" and "runs OVER the checkpoint's" in line and OVERRIDE_FLAG in line
    assert "filter.l_freq 4 in the checkpoint, 1 in the profile" in line
    console = Console(record=True, width=400)
    console.print(render(snap))
    assert line in console.export_text()


def test_live_only_settings_may_differ_and_are_listed(trained, tmp_path):
    """A YAML that agrees in every number but the live hop and smoothing runs (exit 0); the info
    line names both, on the console and in the summary."""
    text = trained["trained_yaml"].read_text().replace("hop_s: 0.5,", "hop_s: 0.25,")
    live_yaml = tmp_path / "live.yaml"
    live_yaml.write_text(text + "smoothing: {method: mean, k: 2}\n")
    r = _live("--profile", str(live_yaml), "--checkpoint", str(trained["checkpoint"]),
              "--replay", str(trained["recording"]), "--speed", str(SPEED), "--no-dashboard",
              "--device", "cpu")
    assert r.returncode == 0, r.stderr
    info = [ln for ln in r.stdout.splitlines() if "live-only settings" in ln]
    assert len(info) == 2, r.stdout  # when the session starts, and in the summary
    assert "window.hop_s 0.5 in the checkpoint, 0.25 in the profile" in info[0]
    assert "smoothing.method none in the checkpoint, mean in the profile" in info[0]
    # the YAML's hop runs: decisions 0.25 s of recording apart (the stream's clock runs at SPEED)
    t_end = [float(ln.split(" t=")[1].split()[0]) for ln in r.stdout.splitlines()
             if ln.startswith("syn #")]
    assert len(t_end) > 10 and min(np.diff(t_end)) * SPEED == pytest.approx(0.25, abs=0.01)
