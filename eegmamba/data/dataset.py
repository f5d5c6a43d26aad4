"""Build a labelled window set from recording files, with the same preprocessing and windowing rule
as the live loop (``eegmamba.preprocessing`` + ``eegmamba.windowing``).

A window is labelled only if every input sample its span covers carries the same class. The span is
the window's first/last output-sample timestamps mapped back to input time: an output sample at time
t takes the label of the input sample period it falls in, ``[i / sfreq, (i + 1) / sfreq)`` with
``i = floor(t * sfreq)``; so offline labels line up with live windows (same timestamps). Every window is kept or counted
in ``WindowSet.drops`` by reason: ``straddles_label_change`` (two classes), ``partly_unlabelled``
(one class and unlabelled samples), ``unlabelled``, ``no_labels_in_file`` (the windows of a file in
which no sample is labelled, e.g. a real-movement run for ``motor_imagery``), and the windower's
``gap``, ``nonfinite``, ``flat``, ``saturated``.
"""

from __future__ import annotations

import collections
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eegmamba._checks import UserInputError
from eegmamba.data.labels import UNLABELLED, sample_labels
from eegmamba.data.readers import expand_paths, read_recording
from eegmamba.preprocessing import Preprocessor
from eegmamba.profiles import Profile, load_profile
from eegmamba.windowing import Window, window_recording


@dataclass
class WindowSet:
    """Labelled windows.

    X : ndarray, shape (N, C, T), float32 (normalized per profile)
    y : ndarray, shape (N,), int64, index into ``classes``
    subjects, files : ndarray, shape (N,), str
    t_start : ndarray, shape (N,), seconds from the start of its file
    drops : Counter of windows not kept, by reason
    skipped_files : list of (file, reason)
    """

    X: np.ndarray
    y: np.ndarray
    subjects: np.ndarray
    files: np.ndarray
    t_start: np.ndarray
    classes: tuple[str, ...]
    ch_names: tuple[str, ...]
    sfreq: float
    drops: collections.Counter = field(default_factory=collections.Counter)
    skipped_files: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)

    def class_counts(self) -> dict[str, int]:
        return {c: int(np.sum(self.y == i)) for i, c in enumerate(self.classes)}

    def summary_table(self, rich: bool = False):
        """Windows per class (columns) per subject (rows), then the drops; text, or a rich Table."""
        subjects = sorted(set(self.subjects.tolist()))
        rows = [[s, *(str(int(np.sum((self.subjects == s) & (self.y == i))))
                      for i in range(len(self.classes))), str(int(np.sum(self.subjects == s)))]
                for s in subjects]
        rows.append(["total", *(str(v) for v in self.class_counts().values()), str(len(self))])
        header = ["subject", *self.classes, "total"]
        drops = ", ".join(f"{k}={v}" for k, v in sorted(self.drops.items())) or "none"
        if rich:
            from rich.table import Table

            table = Table(*header, title="windows per class per subject", caption=f"dropped: {drops}")
            for r in rows:
                table.add_row(*r)
            return table
        widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(header)]
        fmt = "  ".join(f"{{:>{w}}}" for w in widths)
        lines = [fmt.format(*header), *(fmt.format(*r) for r in rows), f"dropped: {drops}"]
        return "\n".join(lines)


def window_label(w: Window, labels: np.ndarray, sfreq: float,
                 timestamps: np.ndarray | None = None) -> tuple[int, str | None]:
    """``(class index, None)`` if all input samples under the window share one class, else
    ``(-1, drop reason)``. ``labels`` are per input sample at ``sfreq`` (timestamps = i / sfreq,
    or ``timestamps`` (s) where the file has its own: the sample periods they start)."""
    if timestamps is None:
        a = max(int(np.floor(w.t_start * sfreq + 1e-9)), 0)
        b = min(int(np.floor(w.t_end * sfreq + 1e-9)), len(labels) - 1)
    else:
        a = max(int(np.searchsorted(timestamps, w.t_start + 1e-9, side="right")) - 1, 0)
        b = min(int(np.searchsorted(timestamps, w.t_end + 1e-9, side="right")) - 1, len(labels) - 1)
    return segment_label(labels[a:b + 1])


def segment_label(seg: np.ndarray) -> tuple[int, str | None]:
    """The labelling rule for one window's input samples' labels ``seg``: ``(class index, None)``
    if all share one class, else ``(-1, drop reason)`` (training, evaluation and live scoring)."""
    classes = np.unique(seg[seg != UNLABELLED])
    if len(classes) == 0:
        return UNLABELLED, "unlabelled"
    if len(classes) > 1:
        return UNLABELLED, "straddles_label_change"
    if np.any(seg == UNLABELLED):
        return UNLABELLED, "partly_unlabelled"
    return int(classes[0]), None


def n_windows_for(n_samples: int, sfreq: float, profile: Profile, hop_s: float | None) -> int:
    """Windows a recording of ``n_samples`` at ``sfreq`` yields (for counting skipped files)."""
    n_out = Preprocessor(profile, sfreq, 1).n_outputs(n_samples)
    length, hop = profile.window_samples, profile.hop_samples(hop_s)
    return 0 if n_out < length else (n_out - length) // hop + 1


def build_windows(paths, profile: Profile | str, hop_s: float | None = None) -> WindowSet:
    """Read, preprocess, window and label recordings.

    Parameters
    ----------
    paths : file or folder path, or a list of them (folders expand to the readable files inside)
    profile : Profile or profile name/path
    hop_s : float, seconds; default the profile's ``window.train_hop_s``

    Raises ``UserInputError`` when no window at all is labelled (with the drop counts); warns when a
    class gets no windows or a file contains non-finite samples.
    """
    profile = load_profile(profile)
    hop_s = profile.window.train_hop_s if hop_s is None else hop_s
    files = expand_paths(paths)
    drops: collections.Counter = collections.Counter()
    skipped: list[tuple[str, str]] = []
    X, y, subj, fnames, t0 = [], [], [], [], []
    for path in files:
        rec = read_recording(path, profile)
        labels = sample_labels(rec, profile)
        if np.all(labels == UNLABELLED):
            drops["no_labels_in_file"] += n_windows_for(rec.n_samples, rec.sfreq, profile, hop_s)
            skipped.append((str(path), "no_labels_in_file"))
            continue
        n_bad = int(np.sum(~np.isfinite(rec.data)))
        if n_bad:
            warnings.warn(f"{path}: {n_bad} non-finite samples; windows covering them are dropped "
                          f"(reason 'nonfinite')", stacklevel=2)
        label_of: dict[int, int] = {}

        def keep(w: Window) -> bool:
            k, reason = window_label(w, labels, rec.sfreq, rec.timestamps)
            if reason is not None:
                drops[reason] += 1
                return False
            label_of[w.index] = k
            return True

        kept, win_drops = window_recording(rec.data, rec.sfreq, rec.timestamps, profile, hop_s=hop_s,
                                           keep=keep)
        drops.update(win_drops)
        X.extend(w.data for w in kept)
        y.extend(label_of[w.index] for w in kept)
        t0.extend(w.t_start for w in kept)
        subj.extend([rec.subject] * len(kept))
        fnames.extend([str(path)] * len(kept))
    if not y:
        detail = ", ".join(f"{k}={v}" for k, v in sorted(drops.items())) or "no windows"
        raise UserInputError(
            f"no labelled windows from {len(files)} file(s) with profile {profile.name!r} "
            f"(dropped: {detail}); check the files' annotations against the profile's label rules"
        )
    ws = WindowSet(
        X=np.stack(X), y=np.asarray(y, dtype=np.int64), subjects=np.asarray(subj),
        files=np.asarray(fnames), t_start=np.asarray(t0, dtype=np.float64), classes=profile.classes,
        ch_names=profile.channels.names, sfreq=profile.sfreq, drops=drops, skipped_files=skipped,
    )
    empty = [c for c, n in ws.class_counts().items() if n == 0]
    if empty:
        warnings.warn(f"no windows for class(es) {', '.join(empty)} "
                      f"(counts: {ws.class_counts()}; dropped: {dict(drops)})", stacklevel=2)
    return ws

