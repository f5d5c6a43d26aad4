"""What a new user meets first: ``eegmamba-live --list`` and a demo screen free of liblsl log lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from realtime.stream.lsl_config import with_log_level

pytestmark = pytest.mark.timeout(180)
REPO = Path(__file__).resolve().parents[2]


def _run(args, cwd, env=None, timeout=150):
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "realtime.cli_live", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env=env)


def test_log_level_is_added_only_where_the_user_set_none():
    assert with_log_level("", -1) == "[log]\nlevel = -1\n"
    user = "[ports]\nBasePort = 16600\n"
    assert with_log_level(user, -1) == user + "[log]\nlevel = -1\n"
    assert with_log_level("[log]\nfile = x.log\n", -1) == "[log]\nlevel = -1\nfile = x.log\n"
    theirs = "[ports]\nBasePort = 16600\n[log]\nlevel = 2\n"
    assert with_log_level(theirs, -1) == theirs


def test_demo_first_screen_has_no_liblsl_info_lines(tmp_path):
    r = _run(["--demo", "--no-dashboard", "--duration", "3"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert "INFO|" not in out and "Loaded default config" not in out, out
    assert "eegmamba-live summary" in out


def test_the_users_own_config_wins_and_is_not_written(tmp_path):
    cfg = tmp_path / "lsl_api.cfg"  # liblsl reads ./lsl_api.cfg: this user wants INFO lines
    cfg.write_text("[log]\nlevel = 0\n")
    r = _run(["--demo", "--no-dashboard", "--duration", "2"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "INFO|" in r.stdout + r.stderr
    assert cfg.read_text() == "[log]\nlevel = 0\n"


def test_list_shows_streams_and_what_fits(player, mi_recording, tmp_path):
    replay = player(mi_recording, repeat=1).start()
    r = _run(["--list"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    row = next(ln for ln in out.splitlines() if ln.startswith(f"│ {replay.name} "))
    assert "│ EEG " in row and "│ 64 " in row and "│ 160 " in row and "double64" in row, row
    assert replay.source_id in row and "motor_imagery" in row and "demo checkpoint" in row, row
    markers = next(ln for ln in out.splitlines() if ln.startswith(f"│ {replay.name}-markers "))
    assert "Markers" in markers and f"--markers {replay.name}-markers" in markers, markers
    assert "seizure does not fit" in out and "INFO|" not in r.stdout + r.stderr


def test_list_with_nothing_visible_says_so(tmp_path):
    from realtime.screen.listing import render_listing

    from rich.console import Console

    console = Console(record=True, width=100)
    console.print(render_listing([], 2.0))
    assert "no LSL streams visible within 2 s" in console.export_text()
