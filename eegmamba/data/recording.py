"""A recording in the profile's channel order (:class:`Recording`), and the subject and run a file
name stands for (:func:`subject_and_run`). Read by :mod:`eegmamba.data.readers` (MNE formats) and
:mod:`eegmamba.data.xdf` (LabRecorder files); this module imports neither.

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

import numpy as np

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
