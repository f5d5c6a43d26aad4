"""Streams as they declare themselves: mne-lsl's integer units, numeric formats on loopback, streams of
strings that claim to be EEG (refused with one line, live and in ``--list``, never a traceback), and
the one line a profile gets when every window is dropped for the signal's quality."""

from __future__ import annotations

import json
import time

import numpy as np
import pylsl
import pytest
from rich.console import Console

from eegmamba._checks import UserInputError
from eegmamba.units import canonical_unit, scale_to_uv
from realtime.stats import ProfileStats, Snapshot, StreamHealth, quality_notes
from realtime.stream.acquisition import Acquisition, StreamQuery
from realtime.stream.monitor import Declaration, StreamMonitor, strings_message
from eegmamba.testing.fault_outlet import FaultyOutlet
from tests.realtime.test_faults import Run, checkpoint, recording  # noqa: F401

pytestmark = pytest.mark.timeout(120)


# ---------------------------------------------------------------- units the mne-lsl way
@pytest.mark.parametrize("unit, ch_type, canon, factor", [
    ("0", "eeg", "V", 1e6), ("-3", "EEG", "mV", 1e3), ("-6", "eeg", "uV", 1.0), ("-9", "eog", "nV", 1e-3),
    ("0", None, "V", 1e6),  # no type declared: mne-lsl's convention is the only one writing integers
    ("0", "misc", "0", None), ("0", "annotations", "0", None), ("-7", "eeg", "-7", None),
    ("microvolts", "misc", "uV", 1.0),  # a spelled-out unit means what it says on any channel
])
def test_integer_units_are_powers_of_ten_of_volts_on_voltage_channels(unit, ch_type, canon, factor):
    assert canonical_unit(unit, ch_type) == canon
    assert scale_to_uv(unit, ch_type) == factor


def _feed(mon, x, fs=160.0, seconds=3.0, chunk=10):
    out = []
    for a in range(0, int(seconds * fs), chunk):
        k = np.arange(a, a + chunk)
        res = mon.on_block(x[:, k % x.shape[1]].copy(), 100.0 + k / fs, 100.0 + k[-1] / fs + 0.001)
        out.append(res[0])
    return np.concatenate(out, axis=1)


def test_player_lsl_declaration_is_read_as_volts():
    """What ``PlayerLSL`` declares for a recording read with MNE: unit ``0``, type ``eeg``."""
    rng = np.random.default_rng(0)
    x_uv = rng.normal(0, 20, (4, 480))
    mon = StreamMonitor(Declaration("MNE-LSL-Player", 160.0, ("0",) * 4, ("eeg",) * 4))
    assert mon.unit_label == "V" and np.all(mon.scale == 1e6)
    np.testing.assert_allclose(_feed(mon, x_uv * 1e-6), x_uv[:, np.arange(480) % 480], rtol=1e-9)
    assert mon.hold is None and mon.message is None


def test_units_override_reaches_eeg_channels_whatever_they_declare():
    """``--units`` used to apply only to channels declaring a voltage: an EEG channel declaring a unit
    not understood (mne-lsl's ``0`` before this change, ``counts``) kept its samples unscaled."""
    rng = np.random.default_rng(1)
    x_v = rng.normal(0, 20e-6, (3, 480))
    mon = StreamMonitor(Declaration("amp", 160.0, ("counts",) * 3, ("EEG",) * 3), units="V")
    assert mon.unit_label == "V (--units)" and np.all(mon.scale == 1e6)
    _feed(mon, x_v)
    assert mon.hold is None
    # without it: taken as µV, checked, held with the way out
    mon = StreamMonitor(Declaration("amp", 160.0, ("counts",) * 3, ("EEG",) * 3))
    assert mon.unit_label == "µV (assumed; declares counts)"
    _feed(mon, x_v)
    assert mon.hold == "units" and mon.message.startswith("stream 'amp' declares counts but")
    assert mon.message.endswith("rerun with --units V")


# ---------------------------------------------------------------- formats on loopback
_NUMERIC = {"int8": pylsl.cf_int8, "int16": pylsl.cf_int16, "int32": pylsl.cf_int32,
            "int64": pylsl.cf_int64, "float32": pylsl.cf_float32, "double64": pylsl.cf_double64}


def _outlet(name, fmt, n_ch=4, srate=100.0, unit="microvolts", stype="EEG"):
    info = pylsl.StreamInfo(name, stype, n_ch, srate, fmt, f"{name}-src")
    info.set_channel_labels([f"C{i}" for i in range(n_ch)])
    info.set_channel_types(["eeg"] * n_ch)
    info.set_channel_units([unit] * n_ch)
    return pylsl.StreamOutlet(info, 10)


def _push_for(outlets_data, seconds, srate=100.0, chunk=10):
    """Push each outlet's (n, C) rows in real time, exact stamps."""
    t0 = pylsl.local_clock()
    for a in range(0, int(seconds * srate), chunk):
        due = t0 + (a + chunk) / srate
        time.sleep(max(0.0, due - pylsl.local_clock()))
        stamps = (t0 + np.arange(a, a + chunk) / srate).tolist()
        for outlet, rows in outlets_data:
            outlet.push_chunk(rows[a:a + chunk] if not isinstance(rows, list) else rows[a:a + chunk],
                              stamps)


def test_numeric_formats_arrive_as_sent(unique_name):
    rng = np.random.default_rng(2)
    data = {f: rng.integers(-60, 60, (400, 4)).astype(np.float64) for f in _NUMERIC}
    outlets = {f: _outlet(f"{unique_name}-{f}", cf) for f, cf in _NUMERIC.items()}
    dtypes = {"int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
              "float32": np.float32, "double64": np.float64}
    acq = Acquisition()
    inlets = {f: acq.add(StreamQuery(name=f"{unique_name}-{f}"), timeout=10.0) for f in _NUMERIC}
    with acq:
        _push_for([(outlets[f], data[f].astype(dtypes[f])) for f in _NUMERIC], 4.0)
        time.sleep(0.5)
    for f, inlet in inlets.items():
        got = np.concatenate([c.samples for c in inlet.drain()], axis=1)
        h = inlet.health()
        assert h.n_errors == 0 and h.hold is None and h.message is None, (f, h)
        np.testing.assert_array_equal(got, data[f][: got.shape[1]].T, err_msg=f)
        assert got.shape[1] >= 350


@pytest.mark.parametrize("unit", ["volts", "microvolts"])
def test_a_stream_of_strings_typed_eeg_is_held_with_one_line(unique_name, unit, caplog):
    """Declared in volts this printed a traceback per chunk; in µV its text was classified."""
    outlet = _outlet(unique_name, pylsl.cf_string, unit=unit)
    rows = [[str(v) for v in r] for r in np.random.default_rng(3).normal(0, 20, (300, 4))]
    acq = Acquisition()
    inlet = acq.add(StreamQuery(name=unique_name), timeout=10.0)
    with caplog.at_level("WARNING"), acq:
        _push_for([(outlet, rows)], 3.0)
        time.sleep(0.3)
    chunks = inlet.drain()
    h = inlet.health()
    assert h.n_errors == 0 and acq.n_errors == 0
    assert h.hold == "format" and h.message == strings_message(unique_name)
    assert h.message.startswith(f"stream '{unique_name}' sends strings; an EEG stream must send numbers")
    assert chunks and all(c.samples.dtype == np.float64 and np.isnan(c.samples).all() for c in chunks)
    assert not [r for r in caplog.records if r.exc_info]  # no traceback logged
    assert sum(strings_message(unique_name) in r.getMessage() for r in caplog.records) == 1


def test_live_refuses_a_stream_of_strings_and_list_says_why(unique_name, capsys):
    from realtime.cli_live import main
    from realtime.screen.listing import list_streams, render_listing

    outlet = _outlet(unique_name, pylsl.cf_string, unit="volts")  # noqa: F841 (kept alive)
    assert main(["--profile", "motor_imagery", "--stream", unique_name, "--no-dashboard",
                 "--device", "cpu", "--timeout", "10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"eegmamba-live: error: {strings_message(unique_name)}"]
    entry = next(e for e in list_streams(1.5) if e.name == unique_name)
    assert entry.sends_strings_as_eeg and not entry.fits and not entry.is_markers
    console = Console(record=True, width=400)
    console.print(render_listing([entry], 1.5))
    text = console.export_text()
    assert "strings: not EEG" in text and strings_message(unique_name) in text


# ---------------------------------------------------------------- every window dropped for quality
def test_quality_note_when_every_window_is_dropped_for_the_signal():
    stream = StreamHealth("s", "headset", "src", "EEG", 4, 160.0, units="µV (--units)")
    bad = ProfileStats("motor_imagery", ("a", "b"), n_windows=12, drops={"flat_run": 10, "flat": 2})
    snap = Snapshot(streams=(stream,), profiles=(bad,))
    (note,) = quality_notes(snap)
    assert note.startswith("motor_imagery: no decision, every window dropped for signal quality "
                           "(flat_run 10, flat 2)") and "stream 'headset' is read as µV (--units)" in note
    ok = ProfileStats("motor_imagery", ("a", "b"), n_windows=12, n_decisions=9, drops={"flat_run": 3})
    assert quality_notes(Snapshot(streams=(stream,), profiles=(ok,))) == []
    held = ProfileStats("motor_imagery", ("a", "b"), n_windows=12, drops={"units": 12})
    assert quality_notes(Snapshot(streams=(stream,), profiles=(held,))) == []  # its own line says why


@pytest.mark.slow
def test_volts_forced_as_microvolts_end_with_the_quality_line(
        checkpoint, recording, unique_name):  # noqa: F811
    """A volts stream with ``--units uV`` (trusted: no amplitude check) is flat at every window:
    no decision, and the dashboard and the summary say what to check."""
    from realtime.cli_live import print_summary
    from realtime.screen.dashboard import render

    r = Run(unique_name, checkpoint, recording, 12.0, scale=1e-6, unit="volts", speed=2.0,
            options={"units": "uV"})
    assert r.output.seq == 0 and r.drops.get("flat_run", 0) >= 10
    snap = r.session.snapshot()
    (note,) = quality_notes(snap)
    for what in (render(snap), None):
        console = Console(record=True, width=400)
        console.print(what) if what is not None else print_summary(r.session, console)
        assert console.export_text().count(note) == 1


@pytest.mark.slow
def test_the_quality_line_reaches_the_log_once(checkpoint, recording, unique_name, tmp_path,
                                               capsys):  # noqa: F811
    """``eegmamba-live --log`` on the same volts-as-µV stream: the summary's quality line is in
    the log file, once, as a note (no decision line)."""
    from realtime.cli_live import main

    x, ch = recording
    outlet = FaultyOutlet(unique_name, x, ch, 160.0, scale=1e-6, unit="volts", speed=2.0)
    log = tmp_path / "decisions.jsonl"
    outlet.start()
    try:
        assert main(["--profile", "motor_imagery", "--checkpoint", str(checkpoint), "--stream",
                     unique_name, "--units", "uV", "--no-dashboard", "--device", "cpu",
                     "--timeout", "10", "--duration", "8", "--log", str(log)]) == 0
    finally:
        outlet.stop()
    (line,) = [json.loads(x) for x in log.read_text().splitlines()]
    assert line["note"] == "quality motor_imagery"
    assert line["message"].startswith("motor_imagery: no decision, every window dropped for "
                                      "signal quality (flat_run")
    words = " ".join(capsys.readouterr().out.split())
    assert " ".join(line["message"].split()) in words  # the summary's line, word for word
