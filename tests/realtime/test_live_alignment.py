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
