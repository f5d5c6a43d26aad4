"""Small argument checks shared by the package (pattern of mne-lsl's ``_checks.py``).

Each exception type means one thing: ``TypeError`` a wrong type, ``ValueError`` a wrong value,
``RuntimeError`` a wrong state. Command-line entry points turn all three (and ``UserInputError``)
into one line on stderr and exit code 2.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable


class UserInputError(ValueError):
    """A problem with what the user gave us (a file, an option, a profile); CLIs print it, exit 2."""


def check_type(value: Any, types: type | tuple[type, ...], name: str) -> Any:
    """Raise ``TypeError`` naming ``name`` unless ``value`` is an instance of ``types``."""
    if not isinstance(value, types):
        names = (
            " or ".join(t.__name__ for t in types) if isinstance(types, tuple) else types.__name__
        )
        raise TypeError(f"{name} must be {names}, got {type(value).__name__} ({value!r})")
    return value


def check_positive(value: float, name: str, *, strict: bool = True) -> float:
    """Raise ``ValueError`` unless ``value`` > 0 (or >= 0 with ``strict=False``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r})")
    if (strict and not value > 0) or (not strict and not value >= 0):
        raise ValueError(f"{name} must be {'>' if strict else '>='} 0, got {value!r}")
    return value


def check_option(value: Any, allowed: Iterable[Any], name: str) -> Any:
    """Raise ``ValueError`` naming the allowed values unless ``value`` is one of them."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def check_fields(cls: type, d: dict) -> dict:
    """Raise ``ValueError`` naming the unknown and the known fields unless every key of ``d`` is a
    field of the dataclass ``cls`` (the ``from_dict`` of configs stored in checkpoints)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown fields {sorted(unknown)}; known: {sorted(known)}")
    return d


def check_file(path: str | Path, what: str = "file") -> Path:
    """Return ``path`` as a ``Path``; raise ``UserInputError`` if it is not an existing file."""
    p = Path(path)
    if not p.exists():
        raise UserInputError(f"{what} not found: {p}")
    if not p.is_file():
        raise UserInputError(f"{what} is not a file: {p}")
    return p
