"""Read a recording file into a ``Recording``: the profile's channels in profile order, in µV.

Any file ``mne.io.read_raw`` reads (EDF/BDF/GDF/FIF…). Sleep-EDF style ``*-PSG.edf`` files are paired
automatically with their ``*-Hypnogram.edf`` in the same folder (annotations from the hypnogram).

Subject and run come from the file name (the rule of ``shared/data/SOURCES.md``: the subject is the
name's prefix): ``S001R04.edf`` → ``S001``, run 4 (EEGMMIDB); ``chb01_03_ictal10s.edf`` → ``chb01``
(CHB-MIT); ``SC4001E0-PSG.edf`` → ``SC400`` (Sleep-EDF: subject = first 5 characters, the 6th is the
night); anything else → the whole stem (``dreams_excerpt1``), run None.

Subject aliases: where a dataset files one person under two names the subject is mapped to one
name, so that subject-grouped cross-validation never trains and tests on the same person.
``KNOWN_SUBJECT_ALIASES`` holds the dataset facts (CHB-MIT: "case chb21 was obtained 1.5 years
after case chb01, from the same female subject", the database description); a profile may add its
own (``subject_aliases``). Names match case-insensitively.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import mne
import numpy as np

from eegmamba._checks import UserInputError, check_file
from eegmamba.channels import match_channels
from eegmamba.data.xdf import is_xdf, read_xdf
from eegmamba.profiles import Profile
from eegmamba.units import check_amplitude, mne_scale_to_uv

READABLE_SUFFIXES = (".edf", ".bdf", ".gdf", ".fif", ".fif.gz", ".vhdr", ".set", ".cnt", ".xdf", ".xdfz")

KNOWN_SUBJECT_ALIASES = {"chb21": "chb01"}

_SUBJECT_RULES = (
    (re.compile(r"^(S\d{3})R(\d+)", re.IGNORECASE), True),  # EEGMMIDB: S001R04
    (re.compile(r"^(chb\d+)_", re.IGNORECASE), False),  # CHB-MIT: chb01_03...
    (re.compile(r"^((?:SC4|ST7)\d\d)\d", re.IGNORECASE), False),  # Sleep-EDF: SC4001E0-PSG
)


@dataclass(frozen=True)
class Recording:
    """One recording in the profile's channel order.

    data : ndarray, shape (C, n), float64, µV
    sfreq : float, Hz
    ch_names : tuple of str, the profile's (canonical) names; ``source_ch_names`` the file's names
    annotations : tuple of (onset s, duration s, description), onset from the first sample
    subject : str (aliases applied: one name per person); run : int or None; path : Path
    timestamps : ndarray, shape (n,), seconds from the first sample, where the file has its own
        (XDF: may hold gaps); None = ``i / sfreq``
    """

    data: np.ndarray
    sfreq: float
    ch_names: tuple[str, ...]
    source_ch_names: tuple[str, ...]
    annotations: tuple[tuple[float, float, str], ...]
    subject: str
    run: int | None
    path: Path
    timestamps: np.ndarray | None = None

    @property
    def n_samples(self) -> int:
        return self.data.shape[1]

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sfreq


def canonical_subject(subject: str, aliases: Mapping[str, str] | None = None) -> str:
    """The subject ``subject`` is the same person as (itself if no alias applies, module docstring).

    aliases : extra ``{alias: subject}`` (a profile's ``subject_aliases``); they win over the known ones
    """
    table = {k.lower(): v for k, v in {**KNOWN_SUBJECT_ALIASES, **(aliases or {})}.items()}
    return table.get(subject.lower(), subject)


def subject_and_run(path: str | Path, aliases: Mapping[str, str] | None = None) -> tuple[str, int | None]:
    """``(subject, run)`` from a file name, subject aliases applied (see module docstring)."""
    stem = Path(path).name
    for suffix in READABLE_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    for rx, has_run in _SUBJECT_RULES:
        m = rx.match(stem)
        if m:
            return canonical_subject(m.group(1), aliases), (int(m.group(2)) if has_run else None)
    return canonical_subject(re.sub(r"-PSG$", "", stem), aliases), None


def find_hypnogram(psg: Path) -> Path | None:
    """The ``*-Hypnogram.edf`` paired with a Sleep-EDF ``*-PSG.edf`` (same folder), or None.

    Sleep-EDF names differ in the last character before the dash (``SC4001E0-PSG.edf`` ↔
    ``SC4001EC-Hypnogram.edf``): an exact ``<stem>-Hypnogram.edf`` is preferred, else the single file
    matching ``<stem minus last char>*-Hypnogram.edf``.
    """
    if not psg.name.endswith("-PSG.edf"):
        return None
    stem = psg.name[: -len("-PSG.edf")]
    exact = psg.with_name(f"{stem}-Hypnogram.edf")
    if exact.is_file():
        return exact
    cands = sorted(psg.parent.glob(f"{stem[:-1]}*-Hypnogram.edf"))
    if len(cands) > 1:
        raise UserInputError(f"{psg}: several hypnograms match ({', '.join(c.name for c in cands)})")
    return cands[0] if cands else None


def is_readable(path: Path) -> bool:
    """True for a file whose suffix MNE reads (hypnogram-only files excluded)."""
    name = path.name.lower()
    return path.is_file() and name.endswith(READABLE_SUFFIXES) and not name.endswith("-hypnogram.edf")


def expand_paths(paths) -> list[Path]:
    """Files from a mix of files and folders (folders: readable files inside, recursively, sorted)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if is_readable(f))
            if not found:
                raise UserInputError(f"no readable recordings ({', '.join(READABLE_SUFFIXES)}) in {p}")
            out.extend(found)
        else:
            out.append(check_file(p, "recording"))
    return out


def read_recording(path: str | Path, profile: Profile) -> Recording:
    """Read ``path`` and pick the profile's channels (aliases allowed), in µV. XDF files are read
    by :func:`eegmamba.data.xdf.read_xdf` (EEG stream, its timestamps, labels from a marker stream).

    Units follow :mod:`eegmamba.units`: MNE reads every declared voltage as volts (converted here to
    µV); a channel without a voltage unit is taken as µV. Raises ``UserInputError`` for a
    missing/unreadable file, missing channels, or an EEG amplitude implausible for µV (a file in
    volts declared as µV, …), naming the file.
    """
    path = check_file(path, "recording")
    if is_xdf(path):  # LabRecorder files: eegmamba.data.xdf (streams, clock offsets, markers)
        return read_xdf(path, profile)
    try:
        raw = mne.io.read_raw(path, preload=False, verbose="error")
    except Exception as exc:  # MNE raises many types for a bad file; all mean "cannot read this"
        raise UserInputError(f"cannot read recording {path}: {type(exc).__name__}: {exc}") from exc
    try:
        picks = match_channels(raw.ch_names, profile.channels.names, profile.channels.aliases)
    except UserInputError as exc:
        raise UserInputError(f"{path}: {exc}") from exc
    scales = [mne_scale_to_uv(raw.info["chs"][i]) for i in picks]
    data = raw.get_data(picks=picks) * np.array([1.0 if s is None else s for s in scales])[:, None]
    declared = "V" if all(s is not None for s in scales) else None
    check = check_amplitude(data, f"recording {path}", declared, option=None)
    if not check.ok:
        raise UserInputError(check.message)
    annotations = raw.annotations
    hyp = find_hypnogram(path)
    if hyp is not None:
        annotations = mne.read_annotations(hyp)
    # onsets relative to the first sample (MNE's are relative to meas_date / first_samp)
    first = raw.first_samp / raw.info["sfreq"]
    ann = tuple(
        (float(o) - first, float(d), str(desc))
        for o, d, desc in zip(annotations.onset, annotations.duration, annotations.description)
    )
    subject, run = subject_and_run(path, profile.subject_aliases)
    return Recording(
        data=np.ascontiguousarray(data, dtype=np.float64), sfreq=float(raw.info["sfreq"]),
        ch_names=tuple(profile.channels.names), source_ch_names=tuple(raw.ch_names[i] for i in picks),
        annotations=ann, subject=subject, run=run, path=path,
    )
