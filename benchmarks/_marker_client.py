"""An outside pylsl client that records when each decision marker is received (benchmarks only).

Runs as a child process (own GIL): it resolves the named marker streams, opens one inlet each and
blocks in ``pull_sample`` on one thread per inlet (liblsl wakes it when a marker lands: no polling
delay, no CPU while idle). Each marker must be a JSON object with a ``seq`` field (the live loop's
decisions; the peers in ``bench_latency_peers.py`` push ``{"seq": n}``). On exit it reports, per
stream name, ``[[seq, local_clock() at reception], ...]`` (with ``full=True``:
``[[seq, received, t_end, latency_ms], ...]``, the decision's window end and its own latency).

    with marker_client(["eegmamba-motor_imagery"]) as received:
        ...  # decisions are pushed
    received()["eegmamba-motor_imagery"]  # -> [[0, 1234.5678], ...]
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path


def _serve(specs: list[str], timeout: float = 20.0, full: bool = False) -> None:
    import pylsl

    source = dict(s.split("|", 1) if "|" in s else (s, None) for s in specs)
    names = list(source)
    wanted, infos = set(names), {}
    end = time.monotonic() + timeout
    while wanted - set(infos) and time.monotonic() < end:
        for info in pylsl.resolve_streams(wait_time=0.5):
            n = info.name()
            if n in wanted and source[n] in (None, info.source_id()):
                infos[n] = info
    missing = wanted - set(infos)
    if missing:
        print(f"missing {sorted(missing)[:3]}", flush=True)
        return
    inlets = {n: pylsl.StreamInlet(infos[n]) for n in names}
    for inlet in inlets.values():
        inlet.open_stream(timeout=10.0)
    stop = threading.Event()
    records: dict[str, list] = {n: [] for n in names}

    def pull(name: str) -> None:
        inlet, out = inlets[name], records[name]
        while not stop.is_set():
            sample, _ = inlet.pull_sample(timeout=0.2)
            if sample is not None:
                now = pylsl.local_clock()
                d = json.loads(sample[0])
                out.append([d["seq"], now, d.get("t_end"), d.get("latency_ms")] if full
                           else [d["seq"], now])

    threads = [threading.Thread(target=pull, args=(n,), daemon=True) for n in names]
    for t in threads:
        t.start()
    print("ready", flush=True)
    sys.stdin.read()  # the parent closes stdin to stop
    stop.set()
    for t in threads:
        t.join(1.0)
    print(json.dumps(records), flush=True)


@contextlib.contextmanager
def marker_client(names: list[str], source_ids: list[str] | None = None, *, full: bool = False,
                  timeout: float = 20.0):
    """Receive the marker streams ``names`` in a child process while inside; yields a callable that
    returns ``{name: [[seq, received], ...]}`` once the block has exited. ``source_ids``: the
    streams' source ids (other processes on a shared machine may publish the same names);
    ``timeout``: seconds to wait for all the streams; ``full``: see the module docstring."""
    specs = [f"{n}|{s}" for n, s in zip(names, source_ids)] if source_ids else list(names)
    opts = [f"--timeout={timeout:g}"] + (["--full"] if full else [])
    proc = subprocess.Popen([sys.executable, __file__, *opts, *specs], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent)
    result: dict = {}
    try:
        line = proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"marker client failed to start: {line or proc.poll()}")
        yield lambda: result
    finally:
        try:
            out, _ = proc.communicate(timeout=30)
            lines = [ln for ln in out.splitlines() if ln.startswith("{")]
            if lines:
                result.update(json.loads(lines[-1]))
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    wait = next((float(a.split("=", 1)[1]) for a in flags if a.startswith("--timeout=")), 20.0)
    _serve([a for a in sys.argv[1:] if not a.startswith("--")], wait, "--full" in flags)
