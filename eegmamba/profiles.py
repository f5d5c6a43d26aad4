"""Task profiles: one YAML file per task (``profiles/<name>.yaml``) → a frozen, validated ``Profile``.

A profile is everything both sides (offline training and the live loop) must agree on: the target
rate, the window (length and hop, seconds), the filter, per-window normalization, the channel list and
its aliases, the class order (= model output order), the label rules that map annotation descriptions
to classes, the smoothing of live predictions, the window quality rules and subject aliases (file
subjects that are one person, for subject-grouped cross-validation); and the training recipe's
``augmentation:`` (training only) and ``alignment:`` (Euclidean alignment, offline and live)
sections (:mod:`eegmamba.profile_recipe`).

Errors name the file and the field: ``profiles/x.yaml: window.hop_s must be > 0, got -1``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

import eegmamba
from eegmamba._checks import UserInputError
from eegmamba.profile_recipe import (ALIGNMENTS, AUGMENTATIONS, AlignmentSpec,  # noqa: F401
                                     AugmentationSpec, TransformSpec, parse_alignment,
                                     parse_augmentation)

PROFILES_DIR = Path(eegmamba.__file__).resolve().parent / "profiles"  # package data: ships in the wheel
IGNORE = "ignore"  # label-rule class meaning "unlabelled on purpose" (e.g. "Movement time")


class _Ctx:
    """Where a value came from, for error messages (``file: field``)."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, fld: str, msg: str) -> UserInputError:
        return UserInputError(f"{self.source}: {fld} {msg}")

    def keys(self, d: Any, fld: str, allowed: set[str], required: set[str] = frozenset()) -> dict:
        if not isinstance(d, Mapping):
            raise self.fail(fld or "profile", f"must be a mapping, got {type(d).__name__}")
        unknown = sorted(set(d) - allowed)
        if unknown:
            where = f"{fld}." if fld else ""
            raise self.fail(
                f"{where}{unknown[0]}", f"is not a known field (allowed: {', '.join(sorted(allowed))})"
            )
        missing = sorted(required - set(d))
        if missing:
            where = f"{fld}." if fld else ""
            raise self.fail(f"{where}{missing[0]}", "is required")
        return dict(d)

    def num(self, v: Any, fld: str, *, gt: float | None = None, ge: float | None = None) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.fail(fld, f"must be a finite number, got {v!r}")
        if gt is not None and not v > gt:
            raise self.fail(fld, f"must be > {gt:g}, got {v!r}")
        if ge is not None and not v >= ge:
            raise self.fail(fld, f"must be >= {ge:g}, got {v!r}")
        return float(v)

    def int_(self, v: Any, fld: str, *, ge: int | None = None) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(fld, f"must be an integer, got {v!r}")
        if ge is not None and v < ge:
            raise self.fail(fld, f"must be >= {ge}, got {v!r}")
        return v

    def str_(self, v: Any, fld: str) -> str:
        if not isinstance(v, str) or not v.strip():
            raise self.fail(fld, f"must be a non-empty string, got {v!r}")
        return v

    def option(self, v: Any, fld: str, allowed: tuple) -> Any:
        if v not in allowed:
            raise self.fail(fld, f"must be one of {', '.join(map(repr, allowed))}, got {v!r}")
        return v

    def str_list(self, v: Any, fld: str, *, allow_empty: bool = False) -> tuple[str, ...]:
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, (list, tuple)) or (not v and not allow_empty):
            raise self.fail(fld, f"must be a non-empty list of strings, got {v!r}")
        out = tuple(self.str_(x, f"{fld}[{i}]") for i, x in enumerate(v))
        if len(set(out)) != len(out):
            dup = next(x for x in out if out.count(x) > 1)
            raise self.fail(fld, f"lists {dup!r} twice")
        return out


@dataclass(frozen=True)
class WindowSpec:
    """Window geometry in seconds. ``train_hop_s``: hop used to cut the offline training set (finer
    grid, same windowing rule); defaults to ``hop_s``."""

    length_s: float
    hop_s: float
    train_hop_s: float


@dataclass(frozen=True)
class FilterSpec:
    """Causal Butterworth band-pass (``order`` per band edge, as SOS) and optional notch, in Hz."""

    l_freq: float | None = 0.1
    h_freq: float | None = 50.0
    order: int = 4
    notch_hz: float | None = None


@dataclass(frozen=True)
class ChannelSpec:
    """Canonical channel names in model order, and per canonical name the aliases tried in order."""

    names: tuple[str, ...]
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class LabelRule:
    """Annotation ``descriptions`` → ``cls`` (a class name or ``"ignore"``), optionally only in files
    whose run number (parsed from the file name, e.g. ``S001R04.edf`` → 4) is in ``runs``."""

    descriptions: tuple[str, ...]
    cls: str
    runs: tuple[int, ...] | None = None

    def applies(self, description: str, run: int | None) -> bool:
        if self.runs is not None and run not in self.runs:
            return False
        return description.strip() in self.descriptions


@dataclass(frozen=True)
class SmoothingSpec:
    """Live prediction smoothing over the last ``k`` windows: ``none``, ``mean`` (of probabilities)
    or ``majority`` (vote of argmax)."""

    method: str = "none"
    k: int = 1


@dataclass(frozen=True)
class QualitySpec:
    """Window quality rules (see ``eegmamba.windowing`` for the order they are applied in).

    On the band-passed 200 Hz signal of a window: ``flat_std_uv``: a channel whose std (µV) is below
    this is flat. ``saturation_uv``: a channel whose peak |x| (µV) reaches this is saturated/artefact.
    On the raw input samples (µV, before filtering) inside the window: ``flat_run_s``: a channel
    whose consecutive samples differ by at most ``flat_run_uv`` for this long (seconds) has a
    flat-line (a partial dropout; ``None`` disables); ``rail_uv``/``rail_run_s``: a channel at
    |x| >= ``rail_uv`` for this long sits on the amplifier's rail (``rail_uv: null`` disables, e.g.
    for DC-coupled amplifiers with large offsets). ``on_bad``: ``skip`` drops such windows,
    ``flag`` keeps them with ``Window.flags`` set. Non-finite data, timestamp gaps (consecutive
    timestamps further apart than ``gap_factor`` sample periods) and jumps always drop the window.

    Defaults, from the 90 recordings in ``shared/data``: with ``flat_run_uv`` 0.5 µV no run longer
    than 0.22 s occurs outside the zero padding that ends many EEGMMIDB files (0.5 s, all channels),
    and 5000 µV is 6 × the largest |x| of any of them.
    """

    on_bad: str = "skip"
    flat_std_uv: float = 0.5
    saturation_uv: float = 1000.0
    gap_factor: float = 1.5
    flat_run_s: float | None = 0.25
    flat_run_uv: float = 0.5
    rail_uv: float | None = 5000.0
    rail_run_s: float = 0.25


@dataclass(frozen=True)
class Profile:
    """A validated task profile (see module docstring). ``normalization``: ``zscore`` = per window,
    per channel (x - mean) / std over the window's samples; ``recording`` = per window, per channel
    (x - mean) / the channel's causal running RMS since the stream or file started (keeps absolute
    amplitude within a recording; ``eegmamba.windowing``); ``none`` = µV as filtered.
    ``subject_aliases``: file subject → the subject it is the same person as (added to the data
    layer's known aliases, ``eegmamba.data.recording.KNOWN_SUBJECT_ALIASES``)."""

    name: str
    task: str
    window: WindowSpec
    classes: tuple[str, ...]
    channels: ChannelSpec
    labels: tuple[LabelRule, ...] = ()
    sfreq: float = 200.0
    filter: FilterSpec = FilterSpec()
    normalization: str = "zscore"
    smoothing: SmoothingSpec = SmoothingSpec()
    quality: QualitySpec = QualitySpec()
    subject_aliases: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    augmentation: AugmentationSpec = AugmentationSpec()
    alignment: AlignmentSpec = AlignmentSpec()
    source: str = field(default="<dict>", compare=False)

    @property
    def n_channels(self) -> int:
        return len(self.channels.names)

    @property
    def window_samples(self) -> int:
        """Window length in samples at ``sfreq``."""
        return round(self.window.length_s * self.sfreq)

    def hop_samples(self, hop_s: float | None = None) -> int:
        """Hop in samples at ``sfreq`` (``hop_s`` defaults to the live ``window.hop_s``)."""
        hop = self.window.hop_s if hop_s is None else hop_s
        n = hop * self.sfreq
        if hop <= 0 or abs(n - round(n)) > 1e-6:
            raise UserInputError(
                f"{self.source}: hop {hop!r} s must be > 0 and a whole number of samples at "
                f"{self.sfreq:g} Hz"
            )
        return round(n)

    def to_dict(self) -> dict:
        """JSON-able dict (goes into checkpoint metadata); ``Profile.from_dict`` inverts it."""
        d = asdict(self)
        d.pop("source")
        d["channels"]["aliases"] = {k: list(v) for k, v in self.channels.aliases.items()}
        d["channels"]["names"] = list(self.channels.names)
        d["classes"] = list(self.classes)
        d["subject_aliases"] = dict(self.subject_aliases)
        aug = self.augmentation
        d["augmentation"] = ({k: asdict(v) for k, v in aug.transforms.items()}
                             | ({"mirror": {"p": aug.mirror_p, "swap": [list(s) for s in aug.mirror_swap]}}
                                if aug.mirror_p or aug.mirror_swap else {}))
        d["labels"] = [
            {"description": list(r.descriptions), "class": r.cls}
            | ({"runs": list(r.runs)} if r.runs is not None else {})
            for r in self.labels
        ]
        return d

    @classmethod
    def from_dict(cls, d: Mapping, source: str = "<dict>") -> "Profile":
        """Validate ``d`` (the YAML schema, or ``to_dict()`` output) into a ``Profile``."""
        return _parse(d, _Ctx(source))

    def with_overrides(self, overrides: Mapping) -> "Profile":
        """This profile with ``overrides`` merged in (nested mappings merged key by key, other values
        replaced) and validated again, e.g. ``{"alignment": {"method": "euclidean"}}``."""
        return _parse(_merge(self.to_dict(), overrides), _Ctx(f"{self.source} + overrides"))


def _merge(base: Mapping, over: Mapping) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


_TOP = {"name", "task", "description", "sfreq", "window", "filter", "normalization", "channels",
        "classes", "labels", "smoothing", "quality", "subject_aliases", "augmentation", "alignment"}


def _parse(d: Any, c: _Ctx) -> Profile:
    d = c.keys(d, "", _TOP, {"name", "window", "channels", "classes"})
    name = c.str_(d["name"], "name")
    sfreq = c.num(d.get("sfreq", 200.0), "sfreq", gt=0)

    w = c.keys(d["window"], "window", {"length_s", "hop_s", "train_hop_s"}, {"length_s", "hop_s"})
    length_s = c.num(w["length_s"], "window.length_s", gt=0)
    hop_s = c.num(w["hop_s"], "window.hop_s", gt=0)
    train_hop_s = c.num(w.get("train_hop_s", hop_s), "window.train_hop_s", gt=0)
    for fld, val in (("length_s", length_s), ("hop_s", hop_s), ("train_hop_s", train_hop_s)):
        n = val * sfreq
        if abs(n - round(n)) > 1e-6 or round(n) < 1:
            raise c.fail(f"window.{fld}", f"must be a whole number (>= 1) of samples at {sfreq:g} Hz, "
                                          f"got {val!r} s = {n:g} samples")

    f = c.keys(d.get("filter", {}), "filter", {"l_freq", "h_freq", "order", "notch_hz"})
    l_freq = f.get("l_freq", 0.1)
    h_freq = f.get("h_freq", 50.0)
    l_freq = None if l_freq is None else c.num(l_freq, "filter.l_freq", gt=0)
    h_freq = None if h_freq is None else c.num(h_freq, "filter.h_freq", gt=0)
    if h_freq is not None and h_freq >= sfreq / 2:
        raise c.fail("filter.h_freq", f"must be < sfreq/2 = {sfreq / 2:g} Hz, got {h_freq:g}")
    if l_freq is not None and h_freq is not None and l_freq >= h_freq:
        raise c.fail("filter.l_freq", f"must be < filter.h_freq ({h_freq:g}), got {l_freq:g}")
    order = c.int_(f.get("order", 4), "filter.order", ge=1)
    notch = f.get("notch_hz")
    notch = None if notch is None else c.num(notch, "filter.notch_hz", gt=0)
    if notch is not None and notch >= sfreq / 2:
        raise c.fail("filter.notch_hz", f"must be < sfreq/2 = {sfreq / 2:g} Hz, got {notch:g}")

    ch = c.keys(d["channels"], "channels", {"names", "aliases"}, {"names"})
    names = c.str_list(ch["names"], "channels.names")
    aliases_in = ch.get("aliases") or {}
    if not isinstance(aliases_in, Mapping):
        raise c.fail("channels.aliases", f"must be a mapping canonical -> [alias, ...], got {aliases_in!r}")
    aliases = {}
    for k, v in aliases_in.items():
        if k not in names:
            raise c.fail(f"channels.aliases.{k}", f"is not one of channels.names ({', '.join(names)})")
        aliases[k] = c.str_list(v, f"channels.aliases.{k}", allow_empty=True)

    classes = c.str_list(d["classes"], "classes")
    if IGNORE in classes:
        raise c.fail("classes", f"must not contain the reserved word {IGNORE!r}")

    rules = []
    labels = d.get("labels") or []
    if not isinstance(labels, (list, tuple)):
        raise c.fail("labels", f"must be a list of rules, got {labels!r}")
    for i, r in enumerate(labels):
        fld = f"labels[{i}]"
        r = c.keys(r, fld, {"description", "class", "runs"}, {"description", "class"})
        cls = c.option(r["class"], f"{fld}.class", (*classes, IGNORE))
        runs = r.get("runs")
        if runs is not None:
            if not isinstance(runs, (list, tuple)) or not runs:
                raise c.fail(f"{fld}.runs", f"must be a non-empty list of run numbers, got {runs!r}")
            runs = tuple(c.int_(x, f"{fld}.runs[{j}]", ge=0) for j, x in enumerate(runs))
        descr = tuple(s.strip() for s in c.str_list(r["description"], f"{fld}.description"))
        rules.append(LabelRule(descr, cls, runs))

    norm = c.option(d.get("normalization", "zscore"), "normalization", ("zscore", "recording", "none"))

    s = c.keys(d.get("smoothing", {}), "smoothing", {"method", "k"})
    smoothing = SmoothingSpec(
        c.option(s.get("method", "none"), "smoothing.method", ("none", "mean", "majority")),
        c.int_(s.get("k", 1), "smoothing.k", ge=1),
    )
    qd = QualitySpec()
    q = c.keys(d.get("quality", {}), "quality", set(QualitySpec.__dataclass_fields__))
    flat_run_s = q.get("flat_run_s", qd.flat_run_s)
    rail_uv = q.get("rail_uv", qd.rail_uv)
    quality = QualitySpec(
        c.option(q.get("on_bad", "skip"), "quality.on_bad", ("skip", "flag")),
        c.num(q.get("flat_std_uv", qd.flat_std_uv), "quality.flat_std_uv", ge=0),
        c.num(q.get("saturation_uv", qd.saturation_uv), "quality.saturation_uv", gt=0),
        c.num(q.get("gap_factor", qd.gap_factor), "quality.gap_factor", gt=1),
        None if flat_run_s is None else c.num(flat_run_s, "quality.flat_run_s", gt=0),
        c.num(q.get("flat_run_uv", qd.flat_run_uv), "quality.flat_run_uv", ge=0),
        None if rail_uv is None else c.num(rail_uv, "quality.rail_uv", gt=0),
        c.num(q.get("rail_run_s", qd.rail_run_s), "quality.rail_run_s", gt=0),
    )
    subject_aliases = _subject_aliases(d.get("subject_aliases") or {}, c)
    task = c.str_(d.get("task", name), "task")
    descr = d.get("description", "")
    if not isinstance(descr, str):
        raise c.fail("description", f"must be a string, got {descr!r}")
    augmentation = parse_augmentation(d.get("augmentation") or {}, classes, c)
    alignment = parse_alignment(d.get("alignment") or {}, norm, c)
    return Profile(
        name=name, task=task, window=WindowSpec(length_s, hop_s, train_hop_s), classes=classes,
        channels=ChannelSpec(names, aliases), labels=tuple(rules), sfreq=sfreq,
        filter=FilterSpec(l_freq, h_freq, order, notch), normalization=norm, smoothing=smoothing,
        quality=quality, subject_aliases=subject_aliases, description=descr,
        augmentation=augmentation, alignment=alignment, source=c.source,
    )


def _subject_aliases(d: Any, c: _Ctx) -> dict[str, str]:
    if not isinstance(d, Mapping):
        raise c.fail("subject_aliases", f"must be a mapping subject -> same subject, got {d!r}")
    out = {c.str_(k, "subject_aliases"): c.str_(v, f"subject_aliases.{k}") for k, v in d.items()}
    for k, v in out.items():
        if v.lower() == k.lower():
            raise c.fail(f"subject_aliases.{k}", "maps a subject to itself")
        if v.lower() in {a.lower() for a in out}:
            raise c.fail(f"subject_aliases.{k}", f"maps to {v!r}, itself an alias; map to the final name")
    return out


def available_profiles() -> list[str]:
    """Names of the profiles shipped in the package's ``eegmamba/profiles/`` folder."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name_or_path: str | Path | Profile) -> Profile:
    """Load a profile by name (``motor_imagery`` → ``profiles/motor_imagery.yaml``) or by path.

    Raises ``UserInputError`` for an unknown name (listing the available ones), an unreadable file, or
    any invalid field (naming file and field).
    """
    if isinstance(name_or_path, Profile):
        return name_or_path
    s = str(name_or_path)
    looks_like_path = s.endswith((".yaml", ".yml")) or "/" in s or "\\" in s
    path = Path(s) if looks_like_path else PROFILES_DIR / f"{s}.yaml"
    if not path.is_file():
        if looks_like_path:
            raise UserInputError(f"profile file not found: {path}")
        raise UserInputError(
            f"unknown profile {s!r}; available: {', '.join(available_profiles()) or '(none)'} "
            f"(or give a path to a .yaml file)"
        )
    try:
        rel = path.resolve().relative_to(PROFILES_DIR.parent)
        source = str(rel)
    except ValueError:
        source = str(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            first = f"{getattr(exc, 'problem', '')} at line {mark.line + 1}, column {mark.column + 1}"
        else:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserInputError(f"{source}: cannot read profile YAML: {first}") from exc
    return _parse(data, _Ctx(source))
