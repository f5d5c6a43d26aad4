"""The accuracy the live demo shows is the offline evaluation of the same run: the bundled
checkpoint on the bundled recording, replayed on LSL loopback through the demo's session (the
path ``eegmamba-live --demo`` takes, played once instead of looping), against
``build_windows`` + ``predict_proba`` on the file (what ``tools/make_demo_checkpoint.py`` and the
protocols score). Same windows, same labels, same decisions, same accuracy."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from eegmamba.checkpoint import load_checkpoint
from eegmamba.data.dataset import build_windows
from eegmamba.profiles import load_profile
from eegmamba.training.metrics import compute_metrics
from eegmamba.training.trainer import predict_proba
from realtime.session import DEMO_CHECKPOINT, DEMO_PROFILE, DEMO_RECORDING, Session, SessionOptions

pytestmark = pytest.mark.timeout(150)

SPEED = 5.0  # 125 s of EEG in 25 s; the loop keeps up on 2 busy cores (no stale drops asserted)


def test_demo_live_accuracy_equals_offline_evaluation(unique_name):
    torch.set_num_threads(1)
    profile = load_profile(DEMO_PROFILE)
    # offline: every labelled window of the run on the live grid (3 s every 0.5 s)
    ws = build_windows([DEMO_RECORDING], profile, hop_s=profile.window.hop_s)
    model, meta = load_checkpoint(DEMO_CHECKPOINT, device="cpu")
    proba = predict_proba(model, ws.X, profile.name, torch.device("cpu"))
    offline = compute_metrics(ws.y, proba)

    decisions = []
    session = Session(SessionOptions(profiles=[DEMO_PROFILE], checkpoints=[str(DEMO_CHECKPOINT)],
                                     replay=str(DEMO_RECORDING), speed=SPEED, device="cpu"))
    try:
        session.loop.on_decision = decisions.append
        end = time.monotonic() + 120
        while not session.finished() and time.monotonic() < end:
            session.loop.run(0.2)
        snap = session.loop.snapshot()
        truth = session.loop.outputs[0].ground_truth
        truth_of = lambda d: truth(d.t_start, d.t_end)  # noqa: E731
        t0, rate = session.replay.t0, session.replay.speed
    finally:
        session.close()
    assert session.loop.drops().get("stale", 0) == 0
    assert session.loop.n_primed > 0  # windows every 0.1 s: the idle model was primed (exactness kept)
    stats = snap.profiles[0]

    # the same windows: the live decisions scored are those at the offline windows' start times
    starts = {round((d.t_start - t0) * rate, 3): d for d in decisions}
    offline_starts = np.round(ws.t_start, 3)
    assert all(s in starts for s in offline_starts), "a labelled offline window got no live decision"
    scored = sorted(s for s, d in starts.items() if truth_of(d) is not None)
    assert scored == sorted(offline_starts.tolist()), (scored, offline_starts.tolist())
    assert stats.n_scored == len(ws) == offline["n"] > 20
    live_labels = [starts[s].label for s in offline_starts]
    live_p = np.array([list(starts[s].probs.values()) for s in offline_starts])
    assert np.abs(live_p - proba).max() < 1e-4  # same windows through the same model
    assert live_labels == [profile.classes[i] for i in proba.argmax(1)]
    # the accuracy the dashboard shows = the offline accuracy (and the one NOTICE.md reports)
    assert stats.accuracy == pytest.approx(offline["acc"], abs=1e-12)
    demo = meta["metadata"]["training"].get("demo_metrics")
    if demo is not None:
        assert demo["n"] == offline["n"] and demo["acc"] == pytest.approx(offline["acc"], abs=1e-9)
