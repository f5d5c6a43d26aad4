"""Live Euclidean alignment (issue 17): a real LSL replay through the live loop with a profile that
aligns gives the decisions of the offline simulation of the causal reference (the same windowing
object fed the whole recording), waits the declared warm-up (counted as ``alignment_warmup``), and
the reference's age reaches the snapshot and the dashboard panel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rich.console import Console

from eegmamba.data.readers import read_recording
from eegmamba.profiles import load_profile
from eegmamba.windowing import window_recording
from realtime.screen.panels import profile_panel
from tests.realtime.test_live import Reader, _build, _checkpoint, _profile_file, _run_until_done

pytestmark = pytest.mark.timeout(120)


def test_live_alignment_equals_its_offline_simulation(tmp_path, player, mi_recording):
    prof = _profile_file(tmp_path, "motor_imagery", smoothing={"method": "none", "k": 1},
                         alignment={"method": "euclidean", "warmup_s": 10.0, "halflife_s": 60.0,
                                    "offline_reference": "causal"})
    ck = _checkpoint(tmp_path, prof)
    replay = player(mi_recording, speed=8.0, chunk_size=16, wait_for_consumer_s=10.0, markers=False)
    replay.start()
    acq, engine, loop = _build(replay, [prof], [ck])
    reader = Reader(f"eegmamba-{loop.outputs[0].name}")
    with acq:
        _run_until_done(loop, replay, [reader])
        snap = loop.snapshot()
    loop.close()
    pipe = loop.outputs[0].pipeline
    drops = pipe.all_drops()
    # 3 s windows every 0.5 s: 14 wait for the 10 s warm-up, then every window is decided
    assert drops["alignment_warmup"] == 14
    assert pipe.n_windows == loop.outputs[0].seq + drops["stale"] + drops["shutdown"]
    age = snap.profiles[0].alignment
    assert age["ready"] and age["seconds"] > 60 and age["since_update_s"] is not None
    console = Console(width=100, record=True)
    console.print(profile_panel(snap.profiles[0]))
    panel = console.export_text()
    assert "alignment" in panel and "EA " in panel

    profile = load_profile(prof)
    rec = read_recording(mi_recording, profile)
    windows, off_drops = window_recording(rec.data, rec.sfreq, None, profile)
    assert off_drops["alignment_warmup"] == 14
    by_start = {w.sample_start: w for w in windows}
    starts = [round(round((d["t_start"] - replay.t0) * replay.sfreq * replay.speed)
                    * profile.sfreq / replay.sfreq) for d in reader.decisions]
    assert len(starts) > 100 and all(s in by_start for s in starts)
    x = torch.from_numpy(np.stack([by_start[s].data for s in starts]))
    with torch.no_grad():
        offline = torch.softmax(engine.models[pipe.model_key].model(x), -1).numpy()
    live = np.array([list(d["probs"].values()) for d in reader.decisions])
    assert np.abs(live - offline).max() <= 1e-4


def _push(pipe, x, t, seed):
    rng, a, n = np.random.default_rng(seed), 0, 0
    while a < x.shape[1]:
        k = int(rng.integers(1, 40))
        n += len(pipe.push_many([(x[:, a:a + k], t[a:a + k], 0.0)], clock=lambda: 0.0))
        a += k
    return n


def test_a_stored_reference_starts_the_next_session_aligned(tmp_path, mi_recording):
    """A calibrated checkpoint's ``alignment_reference`` (stored by the calibration worker) makes a
    new pipeline align from its first window, with no warm-up; without it the warm-up is waited."""
    import json

    from realtime.loop.pipeline import ProfilePipeline

    profile = load_profile(_profile_file(tmp_path, "motor_imagery", alignment={
        "method": "euclidean", "warmup_s": 10.0}))
    rec = read_recording(mi_recording, profile)
    names = list(profile.channels.names)
    first = ProfilePipeline(profile, "s", names, rec.sfreq, "m")
    cut = int(60 * rec.sfreq)
    t = np.arange(rec.n_samples) / rec.sfreq
    _push(first, rec.data[:, :cut], t[:cut], seed=0)
    state = json.loads(json.dumps(first.windower.reference.state_dict()))
    later = ProfilePipeline(profile, "s", names, rec.sfreq, "m", alignment_state=state)
    fresh = ProfilePipeline(profile, "s", names, rec.sfreq, "m")
    rest = rec.data[:, cut:cut + int(20 * rec.sfreq)], t[cut:cut + int(20 * rec.sfreq)]
    n_later, n_fresh = _push(later, *rest, seed=1), _push(fresh, *rest, seed=1)
    assert later.all_drops()["alignment_warmup"] == 0 and n_later == 35  # (20 - 3) / 0.5 + 1
    assert fresh.all_drops()["alignment_warmup"] == 14 and n_fresh == 35 - 14
    assert later.alignment_age()["seconds"] > 60
    unaligned = ProfilePipeline(load_profile("motor_imagery"), "s", names, rec.sfreq, "m",
                                alignment_state=state)
    assert unaligned.windower.reference is None and unaligned.alignment_age() is None


def test_calibration_worker_stores_the_reference_in_the_checkpoint(tmp_path):
    import dataclasses
    import json

    from eegmamba.alignment import EuclideanReference
    from eegmamba.checkpoint import read_metadata
    from eegmamba.training.calibrate import CalibConfig
    from realtime.calibration.worker import run

    prof = _profile_file(tmp_path, "motor_imagery")
    base = _checkpoint(tmp_path, prof)
    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 12)
    groups = np.repeat(np.arange(8), 3).astype(str)
    np.savez(tmp_path / "windows.npz", X=rng.standard_normal((24, 22, 600)).astype(np.float32), y=y,
             groups=groups, t_start=np.arange(24.0))
    state = EuclideanReference(22, 200.0).state_dict()
    (tmp_path / "job.json").write_text(json.dumps({
        "base_checkpoint": str(base), "task": "motor_imagery", "classes": ["left_fist", "right_fist"],
        "config": dataclasses.asdict(CalibConfig(epochs=1, batch_size=8)), "threads": 1,
        "alignment_reference": state}))
    assert run(tmp_path) == 0
    meta = read_metadata(tmp_path / "candidate" / "model.json")
    assert meta["metadata"]["alignment_reference"] == state
