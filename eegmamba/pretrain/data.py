"""Unlabeled windows for EEGM2 pretraining, through the project's ONE preprocessing step and windowing
rule (``eegmamba.preprocessing.Preprocessor`` + ``eegmamba.windowing``), annotations ignored.

The signal contract is a :class:`eegmamba.profiles.Profile` without labels (one placeholder class,
``unlabeled``), so the channel matching (``eegmamba.channels``), filter, resampling to 200 Hz, window
quality rules and per-window z-scoring are exactly those of training and the live loop. The channel
set is, in this order of precedence: ``--channels`` (matched through the profile's alias table when a
profile is given), a base profile's channel list, or the intersection of the files' channel names
after ``normalize_name`` (``Fc3.`` = ``FC3``), in the first file's order.

Every window is kept or counted: the windower's drop reasons (``gap``, ``nonfinite``, ``flat``,
``saturated``) per file, and ``too_short`` for a file shorter than one window.
"""

from __future__ import annotations

import collections
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import mne
import numpy as np

from eegmamba._checks import UserInputError
from eegmamba.channels import normalize_name
from eegmamba.data.readers import expand_paths, read_recording
from eegmamba.preprocessing import Preprocessor
from eegmamba.profiles import Profile, load_profile
from eegmamba.windowing import window_recording

PLACEHOLDER_CLASS = "unlabeled"
#: Filter used without a base profile: the project's profile default (0.1-50 Hz, order 4), so the
#: pretrained encoder sees what the task profiles feed it. The design notes suggest 0.5-40 Hz.
DEFAULT_BAND = (0.1, 50.0)


@dataclass
class PretrainData:
    """Unlabeled windows.

    X : ndarray, shape (N, C, T), float32, z-scored per window and channel (profile normalization)
    subjects, files : ndarray, shape (N,), str (subject = file-name prefix, ``subject_and_run``)
    t_start : ndarray, shape (N,), seconds from the start of the window's file
    profile : the signal contract (channels, rate, window, filter)
    hop_s : float, seconds between window starts
    files_info : per input file ``{"path", "subject", "windows", "drops"}``
    drops : Counter of dropped windows by reason, over all files
    """

    X: np.ndarray
    subjects: np.ndarray
    files: np.ndarray
    t_start: np.ndarray
    profile: Profile
    hop_s: float
    files_info: list[dict] = field(default_factory=list)
    drops: collections.Counter = field(default_factory=collections.Counter)

    def __len__(self) -> int:
        return len(self.X)

    @property
    def ch_names(self) -> tuple[str, ...]:
        return self.profile.channels.names

    def summary(self) -> str:
        """One line: windows, subjects, files and drops."""
        drops = ", ".join(f"{k}={v}" for k, v in sorted(self.drops.items())) or "none"
        return (f"{len(self)} windows of {self.profile.window.length_s:g} s x {len(self.ch_names)} "
                f"channels from {len(self.files_info)} file(s), {len(set(self.subjects.tolist()))} "
                f"subject(s); dropped: {drops}")


def _file_channels(path: Path) -> list[str]:
    from eegmamba.data.xdf import is_xdf, xdf_channel_names

    if is_xdf(path):
        return xdf_channel_names(path)
    try:
        raw = mne.io.read_raw(path, preload=False, verbose="error")
    except Exception as exc:  # MNE raises many types for a bad file; all mean "cannot read this"
        raise UserInputError(f"cannot read recording {path}: {type(exc).__name__}: {exc}") from exc
    return list(raw.ch_names)


def common_channels(files: Sequence[str | Path]) -> tuple[str, ...]:
    """Channels present (by ``normalize_name``) exactly once in every file, in the first file's order.

    Names are returned as the first file spells them without trailing dots (``Fc3.`` → ``Fc3``).
    Raises ``UserInputError`` for an unreadable file or an empty intersection.
    """
    files = [Path(f) for f in files]
    if not files:
        raise UserInputError("no recordings given")
    per_file = []
    for f in files:
        names = _file_channels(f)
        counts = collections.Counter(normalize_name(n) for n in names)
        per_file.append((f, names, counts))
    first_names = per_file[0][1]
    common = [n.strip().rstrip(".").strip() for n in first_names
              if all(c[normalize_name(n)] == 1 for _, _, c in per_file)]
    if not common:
        f0, n0, _ = per_file[0]
        other = next(((f, n) for f, n, c in per_file[1:]
                      if not any(c[normalize_name(x)] == 1 for x in n0)), per_file[-1][:2])
        raise UserInputError(
            f"no channel is common to all {len(files)} recordings: {f0.name} has "
            f"{', '.join(n0[:6])}{'...' if len(n0) > 6 else ''}; {other[0].name} has "
            f"{', '.join(other[1][:6])}{'...' if len(other[1]) > 6 else ''}; give --channels, "
            "or pretrain on recordings with one montage")
    return tuple(common)


def pretrain_profile(ch_names: Sequence[str] | None = None, *, base: Profile | str | None = None,
                     window_s: float = 10.0, hop_s: float | None = None, sfreq: float | None = None,
                     band: tuple[float | None, float | None] | None = None) -> Profile:
    """The unlabeled signal contract for pretraining.

    Parameters
    ----------
    ch_names : channel names in model order; default the base profile's channels (required
        without a base profile)
    base : profile (or its name/path) whose rate, filter, normalization, quality rules and channel
        aliases are reused; its classes and labels are not
    window_s, hop_s : float, seconds; ``hop_s`` defaults to ``window_s`` (no overlap, as the paper)
    sfreq : float, Hz; default the base profile's rate or 200 Hz
    band : (l_freq, h_freq) Hz, either may be None; default the base profile's or ``DEFAULT_BAND``
    """
    base = load_profile(base) if base is not None else None
    if ch_names is None:
        if base is None:
            raise ValueError("pretrain_profile: give ch_names or a base profile")
        ch_names = base.channels.names
    ch_names = [str(c) for c in ch_names]
    aliases = {}
    if base is not None:
        aliases = {k: list(v) for k, v in base.channels.aliases.items() if k in ch_names}
    d: dict = {
        "name": f"pretrain_{base.name}" if base is not None else "pretrain",
        "task": "pretrain",
        "sfreq": float(sfreq if sfreq is not None else (base.sfreq if base else 200.0)),
        "window": {"length_s": window_s, "hop_s": window_s if hop_s is None else hop_s},
        "channels": {"names": ch_names, "aliases": aliases},
        "classes": [PLACEHOLDER_CLASS],
        "labels": [],
    }
    if base is not None:
        f = base.filter
        d["filter"] = {"l_freq": f.l_freq, "h_freq": f.h_freq, "order": f.order, "notch_hz": f.notch_hz}
        d["normalization"] = base.normalization
        d["subject_aliases"] = dict(base.subject_aliases)
        d["quality"] = asdict(base.quality)
    else:
        d["filter"] = {"l_freq": DEFAULT_BAND[0], "h_freq": DEFAULT_BAND[1], "order": 4, "notch_hz": None}
    if band is not None:
        d["filter"]["l_freq"], d["filter"]["h_freq"] = band
    d["window"]["train_hop_s"] = d["window"]["hop_s"]
    return Profile.from_dict(d, source="pretraining options")


def load_unlabeled(paths, profile: Profile, min_windows: int = 2) -> PretrainData:
    """Read every recording, pick the profile's channels, preprocess, window (annotations ignored).

    paths : files/folders (folders expand to the readable recordings inside)
    profile : from :func:`pretrain_profile`; its ``window.hop_s`` is the hop
    min_windows : fewer windows in total is a ``UserInputError`` (default 2: one to validate)
    """
    files = expand_paths(paths)
    hop_s = profile.window.hop_s
    length = profile.window_samples
    X, subj, fnames, t0 = [], [], [], []
    drops: collections.Counter = collections.Counter()
    info = []
    for path in files:
        rec = read_recording(path, profile)
        n_out = Preprocessor(profile, rec.sfreq, 1).n_outputs(rec.n_samples)
        subject = rec.subject  # file-name subject with aliases applied (one name per person)
        if n_out < length:
            drops["too_short"] += 1
            info.append({"path": str(path), "subject": subject, "windows": 0,
                         "drops": {"too_short": 1}})
            continue
        n_bad = int(np.sum(~np.isfinite(rec.data)))
        if n_bad:
            warnings.warn(f"{path}: {n_bad} non-finite samples; windows covering them are dropped "
                          "(reason 'nonfinite')", stacklevel=2)
        wins, win_drops = window_recording(rec.data, rec.sfreq, rec.timestamps, profile, hop_s=hop_s)
        drops.update(win_drops)
        X.extend(w.data for w in wins)
        t0.extend(w.t_start for w in wins)
        subj.extend([subject] * len(wins))
        fnames.extend([str(path)] * len(wins))
        info.append({"path": str(path), "subject": subject, "windows": len(wins),
                     "drops": dict(win_drops)})
    if len(X) < min_windows:
        detail = ", ".join(f"{k}={v}" for k, v in sorted(drops.items())) or "none"
        raise UserInputError(
            f"too few windows for pretraining: {len(X)} of {profile.window.length_s:g} s from "
            f"{len(files)} file(s) (need >= {min_windows}; dropped: {detail}); give longer or more "
            "recordings, or a shorter --window-s / --hop-s")
    return PretrainData(
        X=np.stack(X), subjects=np.asarray(subj), files=np.asarray(fnames),
        t_start=np.asarray(t0, dtype=np.float64), profile=profile, hop_s=float(hop_s),
        files_info=info, drops=drops)
