"""What the latency benchmarks share (``bench_latency.py``, its ``_live_cli.py`` driver,
``bench_latency_peers.py``, ``bench_calibration.py``): replayed EEG streams served by child
processes, an LSL session of their own, the motor-imagery profile's window, percentile summaries.

- :func:`stream_server`: ``n`` streams ``<prefix>-<i>`` replaying a recording (in a loop, chunks of
  ``chunk`` samples) from child processes of at most :data:`PER_SERVER` streams each, so pushing
  does not share the measuring process's GIL. Source ``eegmamba`` (``realtime.replay.player.
  Replay``: stamps a chunk's last sample with its scheduled push time and pushes it right then)
  or ``mne-lsl`` (``PlayerLSL``: stamps it one chunk period ahead). ``wait_for_consumer``: each
  stream starts once a consumer opened it, plus ``stagger * i / n`` seconds (a stream's windows
  are cut from its first sample, so the stagger spreads their phases; 0: all complete together,
  the worst case for a batch); without it every stream pushes from the start.
- :func:`private_lsl_session`: an LSL config with a session id of its own for this process and its
  children, so ``eegmamba-live --all`` takes only this run's streams on a shared machine.
- :func:`percentiles`: ``{"n", "p50", "p95", "p99", "max"}`` of a list of milliseconds.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FILE = REPO.parent / "shared" / "data" / "motor_imagery" / "S001R04.edf"
PER_SERVER = 64  # streams per replay child process


def mi_profile(window_s: float | None = None):
    """The ``motor_imagery`` profile, with its window length set to ``window_s`` seconds if given."""
    from eegmamba.profiles import Profile, load_profile

    p = load_profile("motor_imagery")
    if window_s is None or window_s == p.window.length_s:
        return p
    d = p.to_dict()
    d["window"] = {**d["window"], "length_s": window_s}
    return Profile.from_dict(d)


def percentiles(values) -> dict:
    """p50 / p95 / p99 / max (rounded to 0.01) and the count of ``values``; ``None`` when empty."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    p = np.percentile(v, [50, 95, 99])
    return {"n": int(v.size), "p50": round(float(p[0]), 2), "p95": round(float(p[1]), 2),
            "p99": round(float(p[2]), 2), "max": round(float(v.max()), 2)}


def private_lsl_session() -> str:
    """Point this process (and its children) at an LSL config with a session id of their own,
    keeping the user's config text and liblsl quiet; returns the session id. Call before any LSL
    use in this process."""
    sid = f"eegmamba-bench-{uuid.uuid4().hex[:10]}"
    from realtime.stream.lsl_config import package_config, user_config_path

    user = user_config_path()
    text = user.read_text(errors="replace") if user is not None else ""
    fd, name = tempfile.mkstemp(prefix="eegmamba-bench-lsl-", suffix=".cfg")
    with os.fdopen(fd, "w") as fh:  # the package's port range in every process: all outlets seen
        fh.write(package_config(f"{text}\n[lab]\nSessionID = {sid}\n", level=-2))
    os.environ["LSLAPICFG"] = name
    return sid


def _players(spec: dict) -> list:
    """The started players of one child process (see :func:`stream_server`)."""
    import mne

    mne.set_log_level("WARNING")
    names = [f"{spec['prefix']}-{i}" for i in range(spec["first"], spec["first"] + spec["count"])]
    if spec["source"] == "mne-lsl":
        from mne_lsl.player import PlayerLSL

        raw = mne.io.read_raw(spec["path"], preload=True, verbose="error")
        if spec["index_channel"]:
            idx = mne.io.RawArray(np.arange(raw.n_times, dtype=float)[None], mne.create_info(
                ["SAMPLE_INDEX"], raw.info["sfreq"], "misc"), verbose="error")
            raw.add_channels([idx], force_update_info=True)
        return [PlayerLSL(raw, chunk_size=spec["chunk"], name=n, source_id=n,
                          annotations=False).start() for n in names]
    from realtime.replay.player import Replay

    class Delayed(Replay):
        delay_s = 0.0

        def _wait_for_consumers(self) -> None:  # the consumer's first sample comes delay_s later
            super()._wait_for_consumers()
            self._stop.wait(self.delay_s)

    players = []
    for i, n in zip(range(spec["first"], spec["first"] + spec["count"]), names):
        r = Delayed(spec["path"], name=n, repeat=math.inf, chunk_size=spec["chunk"],
                    index_channel=spec["index_channel"], markers=spec["markers"],
                    wait_for_consumer_s=3600.0 if spec["wait_for_consumer"] else 0.0)
        r.delay_s = spec["stagger"] * i / spec["n"]
        players.append(r.start())
    return players


@contextlib.contextmanager
def stream_server(path: Path, prefix: str, n: int, *, stagger: float = 0.0, markers: bool = False,
                  source: str = "eegmamba", chunk: int = 10, index_channel: bool = False,
                  wait_for_consumer: bool = True, env: dict | None = None):
    """``n`` replayed streams ``<prefix>-<i>`` of ``path`` (child processes, environment ``env``)
    while inside (module docstring for the options)."""
    if source not in ("eegmamba", "mne-lsl"):
        raise ValueError(f"source must be 'eegmamba' or 'mne-lsl', got {source!r}")
    if source == "mne-lsl" and (wait_for_consumer or stagger):
        raise ValueError("PlayerLSL pushes from the start: wait_for_consumer=False, stagger=0")
    procs = []
    try:
        for first in range(0, n, PER_SERVER):
            spec = {"path": str(path), "prefix": prefix, "first": first,
                    "count": min(PER_SERVER, n - first), "n": n, "stagger": stagger,
                    "markers": markers, "source": source, "chunk": chunk,
                    "index_channel": index_channel, "wait_for_consumer": wait_for_consumer}
            procs.append(subprocess.Popen([sys.executable, __file__, "--serve", json.dumps(spec)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                          cwd=REPO, env=env))
        for p in procs:
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("replay server failed to start")
        yield procs
    finally:
        for p in procs:
            with contextlib.suppress(OSError):
                p.stdin.close()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "--serve":
    sys.path.insert(0, str(REPO))
    _running = _players(json.loads(sys.argv[2]))
    print("ready", flush=True)
    try:
        sys.stdin.read()  # the parent closes stdin (or kills us) to stop
    finally:
        for _p in _running:
            _p.stop()
