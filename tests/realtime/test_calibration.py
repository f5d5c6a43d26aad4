"""Live calibration end to end on a real recording replayed on LSL: cues from its marker stream,
windows collected through the training path, fine-tuning in a niced worker process, hot swap,
versioned decisions, the saved checkpoint and its provenance."""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from eegmamba import TaskSpec, create_model
from eegmamba.checkpoint import check_checkpoint, load_checkpoint, save_checkpoint
from eegmamba.profiles import load_profile

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def setup(tmp_path):
    """A 2-s-window left/right profile and a tiny model whose head is biased to 'left_fist' (so a
    calibration can only help: the held-out comparison must see it beat the given model)."""
    d = load_profile("motor_imagery").to_dict()
    d["window"] = {"length_s": 2.0, "hop_s": 0.5, "train_hop_s": 0.5}
    path = tmp_path / "mi2s.yaml"
    path.write_text(yaml.safe_dump(d))
    profile = load_profile(path)
    torch.manual_seed(0)
    model = create_model("eegmamba_tiny", tasks=[TaskSpec(
        profile.task, profile.n_channels, profile.window_samples, len(profile.classes),
        profile.sfreq, profile.channels.names, profile.classes)]).eval()
    with torch.no_grad():
        model.classifier.heads[profile.task].bias.copy_(torch.tensor([6.0, -6.0]))
    ck = save_checkpoint(tmp_path / "ck", model, {"tasks": {profile.task: {
        "profile": profile.to_dict()}}})
    return path, profile, ck


def test_calibration_collects_fine_tunes_swaps_and_saves(setup, tmp_path, shared_data):
    from eegmamba.data.dataset import build_windows
    from realtime.calibration.calibrator import CalibrationOptions
    from realtime.session import Session, SessionOptions

    prof_path, profile, ck = setup
    files = [shared_data / "motor_imagery" / f"S002R{r:02d}.edf" for r in (4, 8, 12)]
    out = tmp_path / "calibrated"
    log = tmp_path / "decisions.jsonl"
    opts = SessionOptions(
        profiles=[str(prof_path)], checkpoints=[str(ck)], replay=[str(f) for f in files],
        speed=4.0, device="cpu", log=str(log),
        calibrate=CalibrationOptions(layers="head", trials=10, out=str(out), subject="S002",
                                     session="test", epochs=15, nice=5),
        calib_compare=True)
    session = Session(opts)
    cal = session.calibrations[0]
    niceness = set()
    try:
        deadline = time.monotonic() + 240
        while not session.finished() and time.monotonic() < deadline:
            session.loop.run(0.5)
            if cal._proc is not None and cal._proc.poll() is None:  # the worker, while it trains
                niceness.add(os.getpriority(os.PRIO_PROCESS, cal._proc.pid) - os.nice(0))
        snap = session.snapshot()
    finally:
        session.close()
    assert cal.phase == "swapped", (cal.phase, cal.message)
    assert 5 in niceness  # the worker runs below the live loop's priority
    # the collected windows are the offline training windows of the same samples (same objects)
    X, y, groups, t_start = cal.collector.data()
    assert len(set(groups.tolist())) >= 10 and set(y.tolist()) == {0, 1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ws = build_windows([files[0]], profile)
    t_file = (t_start - session.replay.t0) * session.replay.speed
    for i in range(len(X)):
        j = int(np.argmin(np.abs(ws.t_start - t_file[i])))
        assert abs(ws.t_start[j] - t_file[i]) < 1e-6 and ws.y[j] == y[i]
        np.testing.assert_allclose(X[i], ws.X[j], atol=1e-4)
    # decisions carry the version; the reference output keeps the uncalibrated model
    decisions = [json.loads(x) for x in log.read_text().splitlines()]
    mine = [d for d in decisions if d["profile"] == "motor_imagery"]
    ref = [d for d in decisions if d["profile"] == "motor_imagery-uncalibrated"]
    assert {d["model_version"] for d in mine} == {0, 1} and {d["model_version"] for d in ref} == {0}
    first_v1 = next(i for i, d in enumerate(mine) if d["model_version"] == 1)
    assert all(d["model_version"] == 1 for d in mine[first_v1:])  # never back
    p = {q.name: q for q in snap.profiles}
    # rounds: 0 while collecting, 1 after the calibration data (fine-tuning), 2 after the swap
    assert snap.round_names == ("during calibration", "after calibration data", "after swap, v1")
    assert {0, 2} <= set(p["motor_imagery"].accuracy_by_round) <= {0, 1, 2}
    assert {0, 2} <= set(p["motor_imagery-uncalibrated"].accuracy_by_round) <= {0, 1, 2}
    assert p["motor_imagery"].model_version == 1
    # the swap is logged with before/after, and the saved checkpoint holds the provenance
    (c,) = snap.calibrations
    assert c.phase == "swapped" and len(c.swaps) == 1 and c.saved == str(out)
    assert c.after["loss"] < c.before["loss"]
    model, meta = load_checkpoint(out)
    calib = meta["metadata"]["calibration"]
    assert (calib["subject"], calib["session"], calib["layers"]) == ("S002", "test", "head")
    assert calib["base_checkpoint"] == str(Path(ck).resolve()) and calib["improved"]
    assert {t["part"] for t in calib["trials"]} == {"train", "early_stopping", "held_out"}
    assert sum(t["n_windows"] for t in calib["trials"]) == len(y)
    assert calib["marker_stream"]["name"] == "S002R04-markers"
    assert "tasks" in meta["metadata"]  # still evaluable with eegmamba-eval
    # it stores the profile this session ran: alone it runs as it was calibrated (the contract)
    assert check_checkpoint(meta, model=model).profile == profile
    report = json.loads((out / "calibration.json").read_text())
    assert report["swapped"] and report["swaps"][0]["version"] == 1
    # the next session starts from it: it loads as a checkpoint of the same profile
    with torch.no_grad():
        x = torch.from_numpy(X[:2])
        assert torch.allclose(model(x), cal.loop.engine.models[cal.model_key].model(x), atol=1e-5)


def test_calibrate_without_cues_is_a_user_error(setup):
    from eegmamba._checks import UserInputError
    from realtime.calibration.calibrator import CalibrationOptions
    from realtime.session import Session, SessionOptions

    prof_path, _, ck = setup
    with pytest.raises(UserInputError, match="--calibrate needs the cues"):
        Session(SessionOptions(profiles=[str(prof_path)], checkpoints=[str(ck)],
                               stream="no-such-stream", resolve_timeout_s=0.5,
                               calibrate=CalibrationOptions(layers="head")))


def test_worker_failure_is_shown_and_the_loop_keeps_deciding(setup, tmp_path, mi_recording):
    """Too few cues of one class: the worker says why, the current model keeps deciding."""
    from realtime.calibration.calibrator import CalibrationOptions
    from realtime.session import Session, SessionOptions

    prof_path, _, ck = setup
    session = Session(SessionOptions(
        profiles=[str(prof_path)], checkpoints=[str(ck)], replay=str(mi_recording), speed=8.0,
        device="cpu", marker_map={"T2": "left_fist"},  # every cue one class
        calibrate=CalibrationOptions(layers="head", trials=4, out=str(tmp_path / "o"))))
    try:
        t0 = time.monotonic()
        session.loop.run(60, should_stop=session.finished)
        snap = session.snapshot()
    finally:
        session.close()
    (c,) = snap.calibrations
    assert c.phase == "failed" and "two classes" in c.message, c.message
    assert snap.profiles[0].n_decisions > 0 and not (tmp_path / "o").exists()
    assert time.monotonic() - t0 < 60
