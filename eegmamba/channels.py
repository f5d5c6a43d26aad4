"""Channel-name normalization and matching of a file's / stream's channels to a profile's channels.

Recording systems spell the same electrode differently: EEGMMIDB writes ``Fc3.`` and ``Cz..``,
TUH writes ``EEG FP1-REF``, Sleep-EDF ``EEG Fpz-Cz``. ``normalize_name`` reduces these to one
comparable form; ``match_channels`` picks, for each wanted (canonical) channel, the one available
channel whose normalized name equals the canonical name or, failing that, one of its aliases
(tried in the order given: the first alias that matches wins).
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from eegmamba._checks import UserInputError

_PREFIX = re.compile(r"^(EEG)[\s_:]+", re.IGNORECASE)
_SUFFIX = re.compile(r"[-_\s](REF|LE|AR)$", re.IGNORECASE)


def normalize_name(name: str) -> str:
    """Comparable form of a channel name: trimmed, trailing dots removed, ``EEG `` prefix and
    ``-REF``/``-LE``/``-AR`` reference suffix removed, upper case.

    ``"Fc3."`` → ``"FC3"``, ``"Cz.."`` → ``"CZ"``, ``"EEG Fpz-Cz"`` → ``"FPZ-CZ"``,
    ``"EEG FP1-REF"`` → ``"FP1"``. A bare ``"EEG"`` stays ``"EEG"``.
    """
    if not isinstance(name, str):
        raise TypeError(f"channel name must be str, got {type(name).__name__} ({name!r})")
    s = name.strip().rstrip(".").strip()
    s = _PREFIX.sub("", s)
    s = _SUFFIX.sub("", s)
    return s.strip().upper()


def match_channels(
    available: Sequence[str],
    wanted: Sequence[str],
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> list[int]:
    """Indices into ``available``, one per name in ``wanted`` (same order).

    For each wanted name the candidates are the name itself, then its aliases in order; the first
    candidate that matches exactly one available channel (after ``normalize_name``) is used.

    Raises ``UserInputError`` naming the missing channels and listing the available ones, or naming
    an ambiguous match (two available channels for one candidate) or one channel matched twice.
    """
    aliases = aliases or {}
    norm = [normalize_name(a) for a in available]
    picks: list[int] = []
    missing: list[str] = []
    for w in wanted:
        found = None
        for cand in (w, *aliases.get(w, ())):
            hits = [i for i, n in enumerate(norm) if n == normalize_name(cand)]
            if len(hits) > 1:
                raise UserInputError(
                    f"channel {w!r} is ambiguous: {', '.join(available[i] for i in hits)} all match "
                    f"{cand!r}; rename or drop one"
                )
            if hits:
                found = hits[0]
                break
        if found is None:
            missing.append(w)
        else:
            picks.append(found)
    if missing:
        raise UserInputError(
            f"missing channel(s) {', '.join(missing)} (needed by the profile); available: "
            f"{', '.join(available) if available else '(none)'}; add aliases to the profile's "
            f"channels.aliases if they are named differently"
        )
    if len(set(picks)) != len(picks):
        dup = next(i for i in picks if picks.count(i) > 1)
        users = [w for w, i in zip(wanted, picks) if i == dup]
        raise UserInputError(
            f"channel {available[dup]!r} matches several profile channels ({', '.join(users)}); "
            f"fix the profile's channels.aliases"
        )
    return picks


_TEN_TEN = re.compile(r"^([A-Z]+)(\d+|Z)$")


def mirror_name(name: str) -> str:
    """The normalized name of the electrode mirrored across the midline (10-10 / 10-20 rule: odd
    numbers lie left, even right, ``n`` odd ↔ ``n + 1``; ``z`` is the midline and stays).

    ``"C3"`` → ``"C4"``, ``"FC6"`` → ``"FC5"``, ``"Cz"`` → ``"CZ"``, ``"T7"`` → ``"T8"``, ``"T3"`` →
    ``"T4"``; a bipolar ``"FP1-F7"`` → ``"FP2-F8"``. Raises ``ValueError`` for a name that is not a
    10-10 electrode (``"EOG"``, ``"A1"`` has mirror ``"A2"`` and is fine).
    """
    parts = normalize_name(name).split("-")
    out = []
    for part in parts:
        m = _TEN_TEN.match(part)
        if m is None or m.group(2) == "0":
            raise ValueError(f"channel {name!r} is not a 10-10 electrode name; it has no mirror")
        letters, num = m.groups()
        if num != "Z":
            n = int(num)
            num = str(n + 1 if n % 2 else n - 1)
        out.append(letters + num)
    return "-".join(out)


def mirror_permutation(names: Sequence[str]) -> list[int]:
    """``perm`` with ``perm[i]`` = the index in ``names`` of channel i's mirror, so ``x[perm]``
    (``x`` of shape ``(C, ...)`` in ``names`` order) is the left/right mirrored recording: the
    signal of C4 where C3 was, and so on. Raises ``UserInputError`` naming the channels whose mirror
    is missing from ``names`` (the montage must be symmetric)."""
    norm = [normalize_name(n) for n in names]
    index = {n: i for i, n in enumerate(norm)}
    perm, missing = [], []
    for raw in names:
        try:
            mirrored = mirror_name(raw)
        except ValueError as exc:
            raise UserInputError(str(exc)) from None
        if mirrored not in index:
            missing.append(f"{raw} (mirror {mirrored})")
        else:
            perm.append(index[mirrored])
    if missing:
        raise UserInputError(f"the hemisphere mirror needs a symmetric montage; missing the mirror "
                             f"of: {', '.join(missing)}")
    return perm
