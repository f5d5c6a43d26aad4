"""The dashboard renders a stats snapshot into a recording console; its thread never dies silently."""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from realtime.screen.dashboard import Dashboard, render
from realtime.stats import (CalibrationStats, ChannelQuality, CollectStats, LatencyStats,
                            LatencyTracker, MarkerStats, ProfileStats, SignalStats, Snapshot,
                            StreamHealth)

pytestmark = pytest.mark.timeout(30)


def _snapshot(label: str = "right") -> Snapshot:
    stream = StreamHealth(
        key="S001R04", name="S001R04", source_id="eegmamba-replay:S001R04", stype="EEG",
        n_channels=64, nominal_srate=160.0, state="lost", measured_srate=161.6,
        last_sample_age_s=2.41, n_samples=32000, n_chunks=3200, n_gaps=2, gap_s=0.75,
        n_backwards=1, n_losses=1, n_reconnects=1,
    )
    profile = ProfileStats(
        name="motor_imagery", classes=("left", "right"), label=label, probs=(0.27, 0.73),
        history=("left", "right", "right"), smoothing="mean over 3 windows", n_windows=40,
        n_decisions=37, accuracy=0.625, n_scored=32, latency=LatencyStats(37, 8.1, 11.0, 13.4, 15.0),
        drops={"stale": 2, "gap": 1}, truth_history=("left", None, "left"), scored=True,
        confusion={("left", "left"): 11, ("left", "right"): 5, ("right", "left"): 7,
                   ("right", "right"): 9},
        model_version=1, accuracy_by_round={0: (0.55, 20), 1: (0.75, 12)},
    )
    signal = SignalStats("motor_imagery", (
        ChannelQuality("C3", "ok", 12.34), ChannelQuality("Cz", "flat", 0.02),
        ChannelQuality("C4", "railed", 5200.0), ChannelQuality("Pz", "NaN", None),
        ChannelQuality("Fz", "high-amplitude", 310.0)))
    markers = MarkerStats("S001R04-markers", 12, "T1 → left", {"left": 4, "ignore": 6, "right": 2},
                          0.0123, False)
    calib = CalibrationStats(
        "motor_imagery", "swapped", CollectStats({"left": 8, "right": 7}, {"left": 36, "right": 31},
                                                 {"unlabelled": 40}, 1.0, "15 trials", True),
        epoch=9, max_epochs=40, last_epoch={"train_loss": 0.41, "val_loss": 0.52, "val_acc": 0.7},
        before={"balanced_acc": 0.5, "loss": 0.71, "n_trials": 4, "acc": 0.5, "n": 18},
        after={"balanced_acc": 0.75, "loss": 0.6, "n_trials": 4, "acc": 0.75, "n": 18},
        message="v1 decides now", swaps=({"time": "12:00:01", "version": 1},), saved="out/S019",
        layers="last")
    return Snapshot(
        streams=(stream,), profiles=(profile,), latency=LatencyStats(37, 8.1, 11.0, 13.4, 15.0),
        drops={"stale": 2, "gap": 1}, uptime_s=61.0, device="cpu", n_errors=1,
        last_error="ValueError: consumer bug", signals=(signal,), markers=(markers,),
        calibrations=(calib,), round_names=("during calibration", "after swap, v1"),
    )


def _text(renderable, width: int = 140) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_render_shows_every_panel():
    text = _text(render(_snapshot()))
    for expected in ("Streams", "S001R04", "lost", "160/161.6", "+1.0%", "2.41", "2/0.75s",
                     "Profile motor_imagery", "right", "0.73", "0.27", "█", "mean over 3 windows",
                     "62.5% of 32", "37 / 40 windows", "Latency", "p99 ms", "13.4", "Drops", "stale",
                     "gap", "Errors", "consumer bug", "device cpu", "model v1",
                     "during calibration: 55.0% of 20", "after swap, v1: 75.0% of 12"):
        assert expected in text, expected
    lines = text.splitlines()
    decided = next(ln for ln in lines if "decided" in ln)
    truth = next(ln for ln in lines if " truth " in ln and "decided" not in ln)
    assert "LRR" in decided and "L·L" in truth  # the truth strip right under the decisions
    assert lines.index(truth) == lines.index(decided) + 1
    assert " L  left" in text and " R  right" in text  # legend


def test_confusion_signal_markers_and_calibration_panels():
    text = _text(render(_snapshot()))
    row = next(ln for ln in text.splitlines() if "L left" in ln and "11" in ln)
    assert row.strip("│ ").split()[-2:] == ["11", "5"]
    assert "confusion (rows: truth, columns: decided)" in text
    for expected in ("  C3 ok       12.3", "  Cz flat      0.0", "  C4 railed   5200", "  Pz NaN         -",
                     "  Fz hi-amp  310.0", "4 bad: Cz, C4, Pz…", "markers 'S001R04-markers': 12 received",
                     "last T1 → left", "clock offset +12.3 ms (time_correction)", "clk ms",
                     "Calibration motor_imagery", "swapped", "left 8, right 7", "(67 windows)",
                     "unlabelled 40", "epoch 9/40", "balanced acc 50.0% → 75.0%",
                     "→ model v1", "out/S019"):
        assert expected in text, expected


def test_render_fits_80_columns():
    text = _text(render(_snapshot()), width=80)
    for expected in ("S001R04", "160/161.6", "+1.0%", "2.41", "32000", "2/0.75s", "62.5% of 32",
                     "LRR", "  C3 ok       12.3", "balanced acc 50.0% → 75.0%", "clock offset +12.3 ms"):
        assert expected in text, expected
    assert max(len(ln) for ln in text.splitlines()) <= 80
    remote = _snapshot()
    remote = dataclasses.replace(remote, streams=(dataclasses.replace(
        remote.streams[0], name="a-rather-long-stream-name", time_correction_s=-0.0042),))
    text = _text(render(remote), width=80)
    assert "clk ms" in text and "-4.2" in text
    assert "a-rather-l" in text and "…" not in text.split("markers")[0]  # wrapped, not cut


def test_render_empty_snapshot():
    text = _text(render(Snapshot()))
    assert "(no stream)" in text and "(none)" in text and "Errors" not in text


def test_latency_percentiles():
    tracker = LatencyTracker(maxlen=100)
    for v in range(1, 201):
        tracker.add(float(v))
    stats = tracker.snapshot()
    assert stats.n == 100 and tracker.total == 200  # the ring keeps the last 100
    assert stats.p50_ms == pytest.approx(150.5) and stats.max_ms == 200.0
    assert stats.p99_ms == pytest.approx(199.01)
    assert LatencyStats.from_values([]) == LatencyStats()


def test_dashboard_thread_refreshes_and_survives_snapshot_errors():
    calls = {"n": 0}

    def snapshot() -> Snapshot:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("snapshot bug")
        return _snapshot(label="left" if calls["n"] % 2 else "right")

    out = io.StringIO()
    console = Console(record=True, width=140, file=out, force_terminal=True)
    with Dashboard(snapshot, refresh_hz=50, console=console) as dash:
        deadline = time.monotonic() + 5
        while calls["n"] < 8 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert calls["n"] >= 8 and dash.n_frames >= 5
    assert dash.n_errors == 1 and "snapshot bug" in dash.last_error
    text = console.export_text()
    assert "Profile motor_imagery" in text and "Streams" in text


def test_profile_stats_validates_probs():
    with pytest.raises(ValueError, match="2 probabilities for 3 classes"):
        ProfileStats(name="x", classes=("a", "b", "c"), probs=(0.5, 0.5))


_TERMINAL_SCRIPT = """
import time
from realtime.screen.dashboard import Dashboard
from realtime.stats import ProfileStats, Snapshot, StreamHealth
snap = Snapshot(
    streams=(StreamHealth(key="tmuxstream", name="tmuxstream", source_id="s", stype="EEG",
                          n_channels=64, nominal_srate=160.0, state="ok", measured_srate=160.0),),
    profiles=(ProfileStats(name="motor_imagery", classes=("left", "right"), label="left",
                           probs=(0.8, 0.2)),),
)
with Dashboard(lambda: snap, refresh_hz=10):
    time.sleep(1.0)
print("DASHBOARD-DONE", flush=True)
time.sleep(30)
"""


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
def test_dashboard_in_a_real_terminal(tmp_path, unique_name):
    script = tmp_path / "dash.py"
    script.write_text(_TERMINAL_SCRIPT)
    session = unique_name[:40]
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "140", "-y", "50",
                    f"{sys.executable} {script}"], check=True, cwd=Path(__file__).resolve().parents[2])
    try:
        deadline, text = time.monotonic() + 20, ""
        while time.monotonic() < deadline and "DASHBOARD-DONE" not in text:
            time.sleep(0.2)
            text = subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                                  capture_output=True, text=True).stdout
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    assert "DASHBOARD-DONE" in text, text
    for expected in ("Streams", "tmuxstream", "Profile motor_imagery", "0.80", "Latency", "Drops"):
        assert expected in text, (expected, text)


def test_held_stream_shows_its_message_line():
    msg = ("stream 'cheap' declares 128 Hz, delivers 160.1 Hz (+25 %): no decisions (windows and "
           "frequencies would be off); if the device really samples at that rate, rerun with "
           "--accept-measured-rate")
    stream = StreamHealth(key="cheap", name="cheap", source_id="c", stype="EEG", n_channels=8,
                          nominal_srate=128.0, state="ok", measured_srate=160.1, expected_srate=128.0,
                          jitter_p95_ms=21.7, n_jumps=2, hold="rate_mismatch", message=msg)
    text = " ".join(_text(render(Snapshot(streams=(stream,))), width=200).split())
    assert "held" in text and "+25.1%" in text and " 22 " in text
    assert msg in text


def test_many_streams_show_one_row_per_output_and_the_streams_not_served():
    from realtime.stats import SkippedStream

    base = _snapshot()
    streams = tuple(dataclasses.replace(base.streams[0], key=f"amp{i}", name=f"amp{i}")
                    for i in range(3))
    profiles = tuple(dataclasses.replace(base.profiles[0], name=f"motor_imagery@amp{i}")
                     for i in range(3))
    signals = (SignalStats("motor_imagery@amp1", (ChannelQuality("C3", "flat", 0.0),
                                                  ChannelQuality("C4", "ok", 9.0))),)
    snap = dataclasses.replace(
        base, streams=streams, profiles=profiles, signals=signals, calibrations=(), markers=(),
        selection="type='EEG'",
        skipped=(SkippedStream("cap", "cap-7", "lab2", "missing channel(s) C3"),))
    text = _text(render(snap), width=80)
    rows = [ln for ln in text.splitlines() if "motor_imagery@amp" in ln]
    assert len(rows) == 3 and all("37/40" in r for r in rows)
    assert "Decisions · 3 stream(s) of type='EEG'" in text and "1 bad: C3" in text
    assert "Not served (1)" in text and "cap (cap-7, lab2): missing channel(s) C3" in text
    assert "Profile motor_imagery" not in text  # no panel per output
    assert max(len(ln) for ln in text.splitlines()) <= 80


def test_summary_line_of_a_marker_stream_names_no_rate_or_units():
    from realtime.cli_live import stream_line
    from realtime.stats import StreamHealth

    eeg = StreamHealth("S1", "S1", "sid", "EEG", 64, 160.0, state="ok", measured_srate=160.0,
                       n_samples=4800, jitter_p95_ms=0.1, units="µV")
    cues = StreamHealth("S1-markers", "S1-markers", "sid-m", "Markers", 1, 0.0, state="ok",
                        n_samples=30, units="µV (assumed)")
    assert stream_line(eeg).endswith("160 Hz expected, 160.0 Hz measured, timestamp jitter p95 "
                                      "0.1 ms, units µV")
    line = stream_line(cues)
    assert line.startswith("stream 'S1-markers': 30 samples") and line.endswith("irregular rate (markers)")
    assert "Hz expected" not in line and "µV" not in line


def test_summary_table_folds_long_output_names_instead_of_cutting_them():
    """Two headsets whose output names differ only at the end stay distinguishable in the exit
    summary at 80 columns (it used to print ``motor_i…`` for both)."""
    from realtime.cli_live import print_summary

    base = _snapshot()
    names = ("motor_imagery@eegmamba-bench-headset-07", "motor_imagery@eegmamba-bench-headset-08")
    snap = dataclasses.replace(base, calibrations=(), markers=(), streams=(), profiles=tuple(
        dataclasses.replace(base.profiles[0], name=n, accuracy_by_round={}) for n in names))

    class _Session:  # print_summary reads snapshot() only
        def snapshot(self):
            return snap

    console = Console(record=True, width=80)
    print_summary(_Session(), console)
    text = console.export_text()
    first = "".join(ln.split("│")[1].strip() for ln in text.splitlines() if ln.count("│") > 2)
    assert all(n in first for n in names), text
    assert "…" not in text and max(len(ln) for ln in text.splitlines()) <= 80
