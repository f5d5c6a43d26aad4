"""The one run folder: a run file that records what was asked (options, recipe, data hashes) and
where/how it ran (provenance), checked on ``--resume``, and atomic JSON writes.

Used by ``eegmamba-train`` (``run.json``), ``eegmamba-protocol`` (``run.json``, also the calibrated
protocol) and ``eegmamba-pretrain`` (``pretrain.json``). A run folder is opened once:

* new run: the run file must not exist (nor any of ``busy``), it is written with ``record`` plus
  ``provenance`` (command, start time, machine, versions);
* ``resume``: the run file (and each of ``required``) must exist and its ``compare`` keys must equal
  ``record``'s (compared as JSON), else a one-line ``UserInputError`` names what differs.
* ``resume_creates``: a missing run file on resume starts a new run (the protocols, whose
  ``--resume`` also means "add models to this folder").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from eegmamba._checks import UserInputError


def write_json(path: str | Path, obj, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (a temporary file, then a rename)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=indent, allow_nan=True) + "\n")
    tmp.replace(path)


def provenance(argv=None, program: str | None = None) -> dict:
    """``{"command", "started", "machine", "versions"}`` of the running process."""
    from eegmamba.training import provenance as prov

    command = prov.command_line(argv)
    if program is not None:
        command = " ".join([program, *command.split(" ")[1:]])
    return {"command": command, "started": prov.now(), "machine": prov.machine(),
            "versions": prov.versions()}


def _jsonable(obj):
    return json.loads(json.dumps(obj))


class RunFolder:
    """Output folder ``out`` with its run file ``name`` (module docstring)."""

    def __init__(self, out: str | Path, name: str = "run.json") -> None:
        self.out = Path(out)
        self.path = self.out / name

    def differences(self, record: dict, compare: Iterable[str] | None = None,
                    nested: str | None = None) -> list[str]:
        """Keys of ``compare`` (default: all of ``record``'s) whose stored value differs; with
        ``nested``, the fields of ``record[nested]`` that differ (named one by one)."""
        old, new = json.loads(self.path.read_text()), _jsonable(record)
        if nested is not None:
            old, new = old.get(nested, {}), new[nested]
            return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        return [k for k in (new.keys() if compare is None else compare) if old.get(k) != new.get(k)]

    def check(self, record: dict, resume: bool, *, compare: Iterable[str] | None = None,
              required: Iterable[str] = (), busy: Iterable[str] = (), resume_creates: bool = False,
              add_hint: str = "", what: str = "options or data", nested: str | None = None) -> bool:
        """Validate opening this folder; returns True when an existing run is resumed (nothing is
        written here; see :meth:`open`)."""
        exists = self.path.is_file()
        if not resume:
            if exists or any((self.out / b).exists() for b in busy):
                raise UserInputError(f"{self.out} already holds a run; use --resume to continue it"
                                     f"{add_hint} or choose another --out")
            return False
        if not exists:
            if resume_creates:
                return False
            raise UserInputError(f"--resume: {self.path} not found; nothing to resume in {self.out}")
        missing = [r for r in required if not (self.out / r).exists()]
        if missing:
            raise UserInputError(f"--resume: no interrupted run in {self.out} ({', '.join(missing)} "
                                 "missing)")
        diff = self.differences(record, compare, nested)
        if diff:
            raise UserInputError(f"--resume: {what} differ from the run in {self.out} "
                                 f"({', '.join(sorted(diff))}; see its {self.path.name}); resume "
                                 "with the same options")
        return True

    def open(self, record: dict, resume: bool, *, argv=None, program: str | None = None,
             write: bool = True, **check) -> dict:
        """:meth:`check`, then write a new run file (``record`` + ``provenance`` unless the record
        has one) when not resuming. Returns the stored run record."""
        if self.check(record, resume, **check):
            return json.loads(self.path.read_text())
        stored = dict(record)
        stored.setdefault("provenance", provenance(argv, program))
        if write:
            self.out.mkdir(parents=True, exist_ok=True)
            write_json(self.path, stored, indent=1)
        return _jsonable(stored)
