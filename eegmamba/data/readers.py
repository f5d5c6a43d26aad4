"""Read a recording file into a ``Recording``: the profile's channels in profile order, in µV.

Any file ``mne.io.read_raw`` reads (EDF/BDF/GDF/FIF…). Sleep-EDF style ``*-PSG.edf`` files are paired
automatically with their ``*-Hypnogram.edf`` in the same folder (annotations from the hypnogram).

Subject and run come from the file name (:func:`eegmamba.data.recording.subject_and_run`, where the
naming rules and subject aliases are described).
"""

from __future__ import annotations

from pathlib import Path

import mne
import numpy as np

from eegmamba._checks import UserInputError, check_file
from eegmamba.channels import match_channels
from eegmamba.data.recording import READABLE_SUFFIXES, Recording, subject_and_run
from eegmamba.data.xdf import is_xdf, read_xdf
from eegmamba.profiles import Profile
from eegmamba.units import check_amplitude, mne_scale_to_uv


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
