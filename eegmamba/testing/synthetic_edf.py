"""Write a SYNTHETIC EDF+ recording for tests and demos (no real EEG in it).

Segments of ``segment_s`` seconds cycle through the given classes; in a class-``i`` segment a
class-specific rhythm (frequency ``8 + 4*i`` Hz, 30 µV) is added on channels ``i, i+n_classes, …``
on top of pink-ish noise (~10 µV); each segment is annotated with its class name (EDF+ annotations).
Optionally a sample-index channel (``SAMPLE_IDX``) holds ``i mod 32768`` exactly (EDF stores 16-bit
integers; use ``unwrap_sample_index`` to recover the running index), so windows and markers computed
downstream can be traced back to the samples they came from.

Usage: ``python -m eegmamba.testing.synthetic_edf out.edf --channels 8 --sfreq 160 --duration 60
--classes rest,left,right --sample-index``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

SAMPLE_INDEX_CHANNEL = "SAMPLE_IDX"
SAMPLE_INDEX_MOD = 32768


def unwrap_sample_index(values: np.ndarray) -> np.ndarray:
    """Running sample index (int64) from a ``SAMPLE_IDX`` channel read back (values mod 32768).

    values : ndarray, shape (n,), as read (rounded to the nearest integer here)
    """
    v = np.rint(np.asarray(values, dtype=np.float64)).astype(np.int64)
    if v.size == 0:
        return v
    steps = np.diff(v) % SAMPLE_INDEX_MOD
    return v[0] + np.concatenate([[0], np.cumsum(steps)])


def make_synthetic_edf(path: str | Path, n_channels: int, sfreq: float, duration_s: float,
                       classes: Sequence[str], ch_names: Sequence[str] | None = None, seed: int = 0,
                       segment_s: float = 5.0, sample_index: bool = False,
                       amplitude_uv: float = 30.0, noise_uv: float = 10.0) -> Path:
    """Write a synthetic EDF+ file (see module docstring); returns its path.

    Parameters
    ----------
    n_channels : int, EEG channels (the sample-index channel, if any, comes in addition, last)
    sfreq : float, Hz (integer rates, or rates whose 1-s record holds a whole number of samples)
    duration_s : float, seconds (rounded down to whole seconds: EDF records are 1 s)
    classes : class names, annotated in turn every ``segment_s`` seconds
    ch_names : EEG channel names (default ``EEG001``…)
    """
    import edfio

    if n_channels < 1 or not classes:
        raise ValueError("need n_channels >= 1 and at least one class")
    if abs(sfreq - round(sfreq)) > 1e-9:
        raise ValueError(f"sfreq must be a whole number of Hz for 1-s EDF records, got {sfreq}")
    ch_names = list(ch_names) if ch_names is not None else [f"EEG{i + 1:03d}" for i in range(n_channels)]
    if len(ch_names) != n_channels:
        raise ValueError(f"{len(ch_names)} ch_names for {n_channels} channels")
    n = int(duration_s) * int(round(sfreq))
    if n == 0:
        raise ValueError("duration_s must be >= 1 s")
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sfreq
    white = rng.standard_normal((n_channels, n))
    # crude 1/f-ish noise: white plus its running average
    kernel = np.ones(8) / 8
    noise = np.array([np.convolve(w, kernel, mode="same") * 2 + w * 0.5 for w in white])
    data = noise * noise_uv / noise.std()
    seg_n = int(round(segment_s * sfreq))
    annotations = []
    for s, start in enumerate(range(0, n, seg_n)):
        i = s % len(classes)
        stop = min(start + seg_n, n)
        chans = np.arange(i % n_channels, n_channels, len(classes))
        freq = 8.0 + 4.0 * i
        data[chans, start:stop] += amplitude_uv * np.sin(2 * np.pi * freq * t[start:stop])
        annotations.append(edfio.EdfAnnotation(start / sfreq, (stop - start) / sfreq, classes[i]))

    lim = float(np.ceil(np.abs(data).max() + 1))
    signals = [
        edfio.EdfSignal(data[c], sfreq, label=ch_names[c], physical_dimension="uV",
                        physical_range=(-lim, lim))
        for c in range(n_channels)
    ]
    if sample_index:
        idx = (np.arange(n) % SAMPLE_INDEX_MOD).astype(np.float64)
        # physical range == digital range: stored integers are the values exactly
        signals.append(edfio.EdfSignal(idx, sfreq, label=SAMPLE_INDEX_CHANNEL, physical_dimension="uV",
                                       physical_range=(-32768, 32767), digital_range=(-32768, 32767)))
    edf = edfio.Edf(signals, annotations=annotations,
                    recording=edfio.Recording(additional=("SYNTHETIC",)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    edf.write(path)
    return path


def _main(argv: Sequence[str] | None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eegmamba.testing.synthetic_edf", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("path", help="output .edf file")
    ap.add_argument("--channels", type=int, default=8, help="number of EEG channels")
    ap.add_argument("--ch-names", default=None, help="comma-separated EEG channel names")
    ap.add_argument("--sfreq", type=float, default=200.0, help="sampling rate, Hz")
    ap.add_argument("--duration", type=float, default=60.0, help="duration, seconds")
    ap.add_argument("--classes", default="rest,task", help="comma-separated class names")
    ap.add_argument("--segment", type=float, default=5.0, help="segment length per class, seconds")
    ap.add_argument("--seed", type=int, default=0, help="random seed")
    ap.add_argument("--sample-index", action="store_true", help="add a SAMPLE_IDX channel")
    args = ap.parse_args(argv)
    names = args.ch_names.split(",") if args.ch_names else None
    out = make_synthetic_edf(args.path, args.channels, args.sfreq, args.duration,
                             args.classes.split(","), ch_names=names, seed=args.seed,
                             segment_s=args.segment, sample_index=args.sample_index)
    print(out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from eegmamba.cli_common import run_cli

    return run_cli(_main, argv)


if __name__ == "__main__":
    # run as a script from a checkout without the package installed: make `eegmamba` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
