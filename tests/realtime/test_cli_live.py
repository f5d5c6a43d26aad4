"""``eegmamba-live`` as a user runs it: bad input gives one line and exit 2; a replay run publishes."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from eegmamba import TaskSpec, create_model
from eegmamba.checkpoint import save_checkpoint
from eegmamba.profiles import load_profile

pytestmark = pytest.mark.timeout(180)


def _live(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "realtime.cli_live", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=Path(__file__).resolve().parents[2])


@pytest.mark.parametrize("args,message", [
    (["--profile", "no_such_profile", "--replay", "x.edf"], "no_such_profile"),
    (["--profile", "seizure", "--checkpoint", "/nonexistent/ck"], "checkpoint not found"),
    (["--profile", "seizure"], "one --checkpoint per --profile"),
    (["--duration", "-1", "--demo"], "--duration must be > 0"),
    (["--profile", "seizure", "--checkpoint", "CK", "--channel-map", "nonsense"], "--channel-map expects"),
])
def test_user_errors_are_one_line_exit_2(args, message, seizure_checkpoint):
    args = [str(seizure_checkpoint) if a == "CK" else a for a in args]
    r = _live(*args)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("eegmamba-live: error")]
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_bad_profile_yaml(tmp_path):
    import yaml

    d = load_profile("seizure").to_dict()
    d["window"]["hop_s"] = -1
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(d))
    r = _live("--profile", str(bad), "--replay", "x.edf")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "bad.yaml: window.hop_s must be > 0, got -1" in r.stderr


def test_checkpoint_that_does_not_fit_the_profile(seizure_checkpoint, shared_data):
    r = _live("--profile", "motor_imagery", "--checkpoint", str(seizure_checkpoint),
              "--replay", str(shared_data / "seizure" / "chb01_03_ictal10s.edf"))
    assert r.returncode == 2 and "does not fit profile 'motor_imagery'" in r.stderr


def test_missing_stream_lists_visible_ones(seizure_checkpoint):
    r = _live("--profile", "seizure", "--checkpoint", str(seizure_checkpoint), "--stream",
              "no-such-stream-xyz", "--timeout", "1")
    assert r.returncode == 2 and "no LSL stream with name='no-such-stream-xyz'" in r.stderr
    assert "visible streams" in r.stderr


def test_replay_run_prints_decisions_log_and_summary(seizure_checkpoint, shared_data, tmp_path):
    log = tmp_path / "decisions.jsonl"
    r = _live("--profile", "seizure", "--checkpoint", str(seizure_checkpoint), "--replay",
              str(shared_data / "seizure" / "chb01_03_ictal10s.edf"), "--speed", "2",
              "--no-dashboard", "--log", str(log), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("seizure #")]
    decisions = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(decisions) == len(lines) > 0
    assert "eegmamba-live summary" in r.stdout and "latency" not in r.stderr.lower().split("error")[0]


def test_dashboard_run_shows_panels_and_live_accuracy(seizure_checkpoint, shared_data):
    r = _live("--profile", "seizure", "--checkpoint", str(seizure_checkpoint), "--replay",
              str(shared_data / "seizure" / "chb01_03_Seizure_41s.edf"), "--speed", "8",
              "--device", "cpu", "--no-prime")
    assert r.returncode == 0, r.stderr
    for panel in ("Streams", "Profile seizure", "Latency", "Drops"):
        assert panel in r.stdout
    assert "seizure #" not in r.stdout  # decisions are on the dashboard, not one line each
    assert "eegmamba-live summary" in r.stdout


def test_channel_map_renames_a_stream_channel(tmp_path, shared_data):
    """A stream whose FP1-F7 is called 'Fp1 bipolar' fits the seizure profile only with the map."""
    from eegmamba.testing.synthetic_edf import make_synthetic_edf

    p = load_profile("seizure")
    names = list(p.channels.names)
    names[0] = "Fp1 bipolar"
    edf = tmp_path / "renamed.edf"
    make_synthetic_edf(edf, len(names), 256.0, 12.0, ["background", "seizure"], ch_names=names)
    torch.manual_seed(0)
    ck = save_checkpoint(tmp_path / "ck", create_model("eegmamba_tiny", tasks=[TaskSpec(
        p.task, p.n_channels, p.window_samples, len(p.classes), p.sfreq, p.channels.names,
        p.classes)]).eval(), {})
    base = ("--profile", "seizure", "--checkpoint", str(ck), "--replay", str(edf), "--speed", "4",
            "--no-dashboard", "--device", "cpu")
    r = _live(*base)
    assert r.returncode == 2 and "missing channel(s) FP1-F7" in r.stderr
    r = _live(*base, "--channel-map", f"{p.channels.names[0]}=Fp1 bipolar")
    assert r.returncode == 0, r.stderr
    assert sum(ln.startswith("seizure #") for ln in r.stdout.splitlines()) > 0


def test_engine_threads_option_takes_effect():
    from realtime.loop.inference import InferenceEngine

    before = torch.get_num_threads()
    try:
        InferenceEngine("cpu", threads=1)
        assert torch.get_num_threads() == 1
        with pytest.raises(ValueError, match="--threads"):
            InferenceEngine("cpu", threads=0)
    finally:
        torch.set_num_threads(before)


def test_stream_selected_by_source_id_and_by_type(seizure_checkpoint, player, short_recording):
    """``--source-id`` and ``--type`` pick an external stream (here an eegmamba-replay in-process)."""
    replay = player(short_recording, source_id="cli-src-" + player.__name__, speed=2.0,
                    repeat=math.inf).start()
    base = ("--profile", "seizure", "--checkpoint", str(seizure_checkpoint), "--no-dashboard",
            "--device", "cpu", "--duration", "6")
    r = _live(*base, "--source-id", replay.source_id)
    assert r.returncode == 0, r.stderr
    assert f"stream '{replay.name}'" in r.stdout
    r = _live(*base, "--source-id", replay.source_id, "--type", "Markers")
    assert r.returncode == 2 and "no LSL stream with type='Markers' and source_id=" in r.stderr


@pytest.mark.parametrize("prime", [True, False])
def test_priming_follows_the_session_option(seizure_checkpoint, short_recording, prime):
    """``--no-prime`` (``SessionOptions.prime``) turns the loop's priming off; by default a slow
    stream's idle model is primed before its windows."""
    from realtime.session import Session, SessionOptions

    session = Session(SessionOptions(profiles=["seizure"], checkpoints=[str(seizure_checkpoint)],
                                     replay=str(short_recording), speed=1.0, device="cpu",
                                     prime=prime))
    try:
        session.loop.run(6.0)
        assert session.loop.outputs[0].seq >= 3
        assert (session.loop.prime_lead_s is not None) == prime
        assert (session.loop.n_primed > 0) == prime
    finally:
        session.close()
