"""Latency of hand-glued *peer* pipelines over replayed EEGMMIDB streams (the "peer" column of issue 5).

Peers, each a single polling loop over ``N`` mne-lsl ``StreamLSL`` inlets (one per replayed stream),
windows of the ``motor_imagery`` profile's length every hop (3 s every 0.5 s) cut by the
sample-index channel of the replay:

- ``floor``: no processing (the mne-lsl polling floor);
- ``csp``: 8-30 Hz IIR band-pass of the window + CSP (4 components) + LDA, fitted offline on the
  same recording's T1/T2 epochs;
- ``cnn``: a small EEGNet-like PyTorch CNN (random weights, eval mode, ``torch.inference_mode``).

The same three with an ``acq-`` prefix replace the ``StreamLSL`` inlets by this package's single
acquisition thread (``realtime.stream.acquisition``), to compare the ingestion floor and its CPU cost.

Each peer classifies only the newest complete window when it polls (like the issue's hand-glued
peers); windows passed over are *counted* as ``skipped`` here (the issue's peer at 48 streams
skipped every other window without saying so).

Latency = local time when the decision is made minus the time the window's last sample was
pushed (``p50_ms`` …), and when the decision's marker (pushed on one LSL marker outlet per stream,
as ``eegmamba-live`` does) is received by an outside pylsl client process (``recv_p50_ms`` …,
``benchmarks/_marker_client.py``). Source ``eegmamba`` (default, ``realtime.replay.player.Replay``) stamps a chunk's last sample with
its scheduled push time and pushes it right after, so that timestamp *is* the push time (actual
pushes can only be later: the figure is conservative by the pusher's wake-up jitter). Source
``mne-lsl`` (``PlayerLSL``) stamps the last sample one chunk period in the future, so the push time
is taken as that timestamp minus ``chunk_size / sfreq`` (the correction the issue describes).

The replayed streams run in child processes (``_latency_common.stream_server``) so that pushing
does not share this process's GIL.

    python benchmarks/bench_latency_peers.py                       # 1 stream, 20 s per peer
    python benchmarks/bench_latency_peers.py --streams 16 --duration 30 --json peers.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks._latency_common import (DEFAULT_FILE, mi_profile, percentiles,  # noqa: E402
                                        stream_server)
from benchmarks._marker_client import marker_client  # noqa: E402

# the live motor-imagery profile's window length and hop (s): the peers cut the same windows
WINDOW_S, HOP_S = mi_profile().window.length_s, mi_profile().window.hop_s


def _csp_lda(path: Path):
    import mne
    from mne.decoding import CSP
    from scipy.signal import butter, sosfilt
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.pipeline import make_pipeline

    raw = mne.io.read_raw(path, preload=True, verbose="error")
    fs = raw.info["sfreq"]
    sos = butter(4, [8, 30], btype="bandpass", fs=fs, output="sos")
    data = sosfilt(sos, raw.get_data() * 1e6, axis=1)
    n = int(WINDOW_S * fs)
    X, y = [], []
    for onset, desc in zip(raw.annotations.onset, raw.annotations.description):
        start = int(round(onset * fs))
        if desc in ("T1", "T2") and start + n <= data.shape[1]:
            X.append(data[:, start:start + n])
            y.append(desc)
    model = make_pipeline(CSP(n_components=4), LinearDiscriminantAnalysis()).fit(np.array(X), y)

    def classify(window: np.ndarray):
        return model.predict_proba(sosfilt(sos, window, axis=1)[None])

    return classify


def _cnn(n_ch: int, n_times: int):
    import torch
    from torch import nn

    model = nn.Sequential(
        nn.Conv2d(1, 8, (1, 64), padding=(0, 32), bias=False), nn.BatchNorm2d(8),
        nn.Conv2d(8, 16, (n_ch, 1), groups=8, bias=False), nn.BatchNorm2d(16), nn.ELU(),
        nn.AvgPool2d((1, 4)), nn.Dropout(0.25),
        nn.Conv2d(16, 16, (1, 16), padding=(0, 8), groups=16, bias=False),
        nn.Conv2d(16, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ELU(), nn.AvgPool2d((1, 8)),
        nn.Flatten(), nn.LazyLinear(3), nn.Softmax(dim=1),
    )
    model.eval()

    def classify(window: np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32))[None, None]
        x = (x - x.mean(dim=-1, keepdim=True)) / (x.std(dim=-1, keepdim=True) + 1e-6)
        with torch.inference_mode():
            return model(x).numpy()

    for _ in range(5):  # warm-up (lazy layer, allocator)
        classify(np.random.default_rng(0).standard_normal((n_ch, n_times)))
    return classify


class _MneLslReader:
    """The peers' ingestion: one mne-lsl ``StreamLSL`` (own polling thread) per stream."""

    def __init__(self, names: list[str]) -> None:
        from mne_lsl.stream import StreamLSL

        self.streams = [StreamLSL(bufsize=WINDOW_S + 2.0, name=n).connect(acquisition_delay=0.001,
                                                                         timeout=10) for n in names]

    def read(self, i: int):
        return self.streams[i].get_data()

    def close(self) -> None:
        for s in self.streams:
            s.disconnect()


class _AcquisitionReader:
    """This package's ingestion: ONE ``realtime.stream.acquisition`` thread for all streams."""

    def __init__(self, names: list[str], fs: float) -> None:
        from realtime.stream.acquisition import Acquisition, StreamQuery

        self.acq = Acquisition()
        self.inlets = [self.acq.add(StreamQuery(name=n), timeout=10) for n in names]
        self.acq.start()
        self.keep = int((WINDOW_S + 2.0) * fs)
        n_ch = self.inlets[0].n_channels
        self.data = [np.zeros((n_ch, 1)) for _ in names]
        self.ts = [np.zeros(1) for _ in names]

    def read(self, i: int):
        chunks = self.inlets[i].drain()
        if chunks:
            self.data[i] = np.concatenate([self.data[i]] + [c.samples for c in chunks], 1)[:, -self.keep:]
            self.ts[i] = np.concatenate([self.ts[i]] + [c.timestamps for c in chunks])[-self.keep:]
        return self.data[i], self.ts[i]

    def close(self) -> None:
        self.acq.stop()


def _run_peer(peer: str, names: list[str], classify, args, fs: float) -> dict:
    import pylsl

    win, hop = int(WINDOW_S * fs), int(HOP_S * fs)
    tc = time.monotonic()
    reader = _AcquisitionReader(names, fs) if peer.startswith("acq-") else _MneLslReader(names)
    print(f"{peer:>9}: connected {len(names)} stream(s) in {time.monotonic() - tc:.1f} s", flush=True)
    marker_names = [f"{n}-{peer}-markers" for n in names]
    outlets = [pylsl.StreamOutlet(pylsl.StreamInfo(m, "Markers", 1, pylsl.IRREGULAR_RATE,
                                                   pylsl.cf_string, m)) for m in marker_names]
    with marker_client(marker_names) as received:
        res, sent = _peer_loop(peer, names, classify, args, fs, reader, outlets, win, hop)
    reader.close()
    recv = []
    for i, m in enumerate(marker_names):
        for seq, t_recv in received().get(m, []):
            if (i, seq) in sent:
                recv.append(1e3 * (t_recv - sent[(i, seq)]))
    r = percentiles(recv)
    nan = float("nan")
    res.update({"received": len(recv), **{f"recv_{q}_ms": nan if r[q] is None else r[q]
                                          for q in ("p50", "p95", "p99")}})
    return res


def _peer_loop(peer, names, classify, args, fs, reader, outlets, win, hop):
    from pylsl import local_clock

    push_shift = args.chunk_size / fs if args.source == "mne-lsl" else 0.0
    next_end = [None] * len(names)
    lat, skipped, incomplete = [], 0, 0
    seqs, sent = [0] * len(names), {}  # (stream, seq) -> push time of the window's last chunk
    # Warm-up: each stream's first decision is not measured; the clock starts once every stream
    # has decided (inlets open one after another: first windows complete at different times).
    warm = [False] * len(names)
    cpu0, t0 = time.process_time(), None
    t_fail = time.monotonic() + WINDOW_S + 30.0
    while t0 is None or time.monotonic() - t0 < args.duration:
        if t0 is None and time.monotonic() > t_fail:
            raise RuntimeError(f"peer {peer}: no complete window within {WINDOW_S + 30:g} s")
        for i in range(len(names)):
            data, ts = reader.read(i)
            idx = data[-1]
            newest = int(idx[-1])
            if ts[-1] == 0:  # nothing received yet
                continue
            if next_end[i] is None:  # first window ends on a chunk's last sample
                first = newest + win
                next_end[i] = first + (args.chunk_size - 1 - first % args.chunk_size)
            if newest < next_end[i]:
                continue
            n_avail = (newest - next_end[i]) // hop + 1  # only the newest is classified
            end = next_end[i] + (n_avail - 1) * hop
            skipped += n_avail - 1
            next_end[i] = end + hop
            pos = idx.size - 1 - (newest - end)
            if pos - win + 1 < 0 or idx[pos - win + 1] != end - win + 1:
                incomplete += 1
                continue
            classify(data[:-1, pos - win + 1:pos + 1])
            chunk_last_ts = ts[pos] + (args.chunk_size - 1 - end % args.chunk_size) / fs
            latency_ms = 1e3 * (local_clock() - (chunk_last_ts - push_shift))
            outlets[i].push_sample([json.dumps({"seq": seqs[i]})])
            if t0 is not None:
                lat.append(latency_ms)
                sent[(i, seqs[i])] = chunk_last_ts - push_shift
            elif not warm[i]:
                warm[i] = True
                if all(warm):
                    t0, cpu0, skipped, incomplete = time.monotonic(), time.process_time(), 0, 0
            seqs[i] += 1
        time.sleep(0.001)
    wall = time.monotonic() - t0
    cpu = 100 * (time.process_time() - cpu0) / wall
    pct = {k: float("nan") if v is None else v for k, v in percentiles(lat).items()}
    expected = len(names) * args.duration / HOP_S
    return {"peer": peer, "streams": len(names), "decisions": len(lat),
            "decisions_expected_approx": int(expected), "skipped": skipped,
            "incomplete": incomplete, **{f"{q}_ms": pct[q] for q in ("p50", "p95", "p99", "max")},
            "process_cpu_pct": round(cpu, 1)}, sent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--file", type=Path, default=DEFAULT_FILE, help="recording to replay")
    p.add_argument("--streams", type=int, default=1, help="concurrent replayed streams")
    p.add_argument("--duration", type=float, default=20.0, help="seconds measured per peer")
    p.add_argument("--peers", default="floor,csp,cnn,acq-floor",
                   help="comma-separated: floor, csp, cnn (mne-lsl StreamLSL per stream) or the "
                   "same with an acq- prefix (this package's single acquisition thread)")
    p.add_argument("--source", choices=("eegmamba", "mne-lsl"), default="eegmamba",
                   help="replay engine (see module docstring for the latency reference)")
    p.add_argument("--chunk-size", type=int, default=10, help="samples per pushed chunk")
    p.add_argument("--threads", type=int, default=1, help="torch threads for the cnn peer")
    p.add_argument("--window-s", type=float, default=None,
                   help="window length, seconds (default: the motor_imagery profile's)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    global WINDOW_S
    WINDOW_S = args.window_s or WINDOW_S
    import mne
    import torch

    mne.set_log_level("WARNING")
    torch.set_num_threads(args.threads)  # measured here: keep the CNN peer's threads explicit
    raw = mne.io.read_raw(args.file, preload=False, verbose="error")
    fs, n_ch = raw.info["sfreq"], len(raw.ch_names)
    if args.source == "mne-lsl" and args.duration * len(args.peers.split(",")) > raw.times[-1] - 10:
        print("warning: mne-lsl source restarts its sample index at each loop of the file", file=sys.stderr)
    prefix = f"peerbench-{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}-{i}" for i in range(args.streams)]
    results = []
    with stream_server(args.file, prefix, args.streams, source=args.source, chunk=args.chunk_size,
                       index_channel=True, wait_for_consumer=False):
        for peer in args.peers.split(","):
            model = peer.removeprefix("acq-")
            classify = {"floor": lambda: (lambda w: None), "csp": lambda: _csp_lda(args.file),
                        "cnn": lambda: _cnn(n_ch, int(WINDOW_S * fs))}[model]()
            res = _run_peer(peer, names, classify, args, fs)
            results.append(res)
            print(f"{peer:>9}: {res['streams']} stream(s), {res['decisions']} decisions "
                  f"(~{res['decisions_expected_approx']} expected), "
                  f"skipped {res['skipped']}, incomplete {res['incomplete']}, p50 {res['p50_ms']:.1f} ms, "
                  f"p95 {res['p95_ms']:.1f} ms, p99 {res['p99_ms']:.1f} ms, max {res['max_ms']:.1f} ms; "
                  f"marker received p50 {res['recv_p50_ms']:.1f} ms, p99 {res['recv_p99_ms']:.1f} ms; "
                  f"process CPU {res['process_cpu_pct']:.0f}%", flush=True)
    report = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "source": args.source, "file": args.file.name, "window_s": WINDOW_S, "hop_s": HOP_S,
        "duration_s": args.duration, "torch_threads": args.threads, "chunk_size": args.chunk_size,
        "latency_from": "push time of the window's last sample" + (
            " (PlayerLSL timestamp minus one chunk period)" if args.source == "mne-lsl" else ""),
        "results": results,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
