"""Safe checkpoints: safetensors weights + a JSON metadata file, rebuilt through the model registry.

A checkpoint is a folder with ``model.safetensors`` and ``model.json``. The JSON holds the variant name,
its config, the package version and whatever the caller adds (profile, channel names, sampling rate,
window length, preprocessing parameters, training provenance). Loading validates both files and never
unpickles anything: the model is rebuilt from the registry and the tensors are checked name by name.
``variant`` is the registry name of whatever model it is (an EEGMamba variant, ``eegnet``,
``eegconformer``, an EEGM2 classifier; every checkpoint has one, so an old one names its EEGMamba
variant): loading, the contract and the live loop do not depend on which.

The contract (:func:`check_checkpoint`, the one check eval, live, calibration and ``--list`` use):
the profile stored in a checkpoint is the source of truth for how its input is made. A profile given
beside it runs only where it agrees in every field that changes a window's probabilities; fields
listed in :data:`LIVE_ONLY` (hop, smoothing, labels, ...) may differ and are reported as such; an
explicit override runs the given profile anyway and says so.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from eegmamba._checks import UserInputError
from eegmamba.profiles import Profile

FORMAT = "eegmamba-checkpoint"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
METADATA = "model.json"


class CheckpointError(UserInputError):
    """A checkpoint folder or file that cannot be used; the message names the file and the problem."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _folder(path: str | Path) -> Path:
    p = Path(path)
    if p.suffix in (".json", ".safetensors"):
        p = p.parent
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}")
    if not p.is_dir():
        raise CheckpointError(f"checkpoint must be a folder holding {WEIGHTS} and {METADATA}: {p}")
    return p


def save_checkpoint(folder: str | Path, model: nn.Module, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (a registry-built model with ``.variant`` and ``.config``) to ``folder``.

    ``metadata`` (JSON-serialisable) is stored under ``"metadata"``; typical keys: ``profile``,
    ``ch_names``, ``class_names``, ``sfreq``, ``window_s``, ``preprocessing``, ``training``.
    Returns the folder.
    """
    from eegmamba import __version__

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    variant = getattr(model, "variant", None)
    if not variant or variant == "custom":
        raise ValueError("only registry-built models can be saved (model.variant is not set)")
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    weights = folder / WEIGHTS
    save_file(state, str(weights), metadata={"format": FORMAT, "variant": variant})
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "variant": variant,
        "config": model.config.to_dict(),
        "package_version": __version__,
        "torch_version": torch.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "weights_sha256": _sha256(weights),
        "tensors": {k: list(v.shape) for k, v in state.items()},
        "metadata": metadata or {},
    }
    text = json.dumps(meta, indent=2, sort_keys=False, allow_nan=False)
    (folder / METADATA).write_text(text + "\n")
    return folder


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Read and validate ``model.json`` of a checkpoint folder (no weights are loaded)."""
    folder = _folder(path)
    meta_path = folder / METADATA
    if not meta_path.is_file():
        raise CheckpointError(f"{meta_path}: missing (a checkpoint folder needs {METADATA} and {WEIGHTS})")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path}: not an eegmamba checkpoint (format field missing or wrong)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{meta_path}: format_version {meta.get('format_version')!r} is not supported "
            f"(this eegmamba reads version {FORMAT_VERSION})"
        )
    for key in ("variant", "config", "weights_sha256", "tensors"):
        if key not in meta:
            raise CheckpointError(f"{meta_path}: field {key!r} is missing")
    return meta


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", backend: str | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model from a checkpoint folder; return ``(model in eval mode, metadata dict)``.

    The returned dict is the whole ``model.json`` (the caller's metadata is under ``"metadata"``);
    when the weights use an older version's tensor names that the model maps (``upgrade_state_dict``,
    e.g. count-keyed spatial branches), ``"upgraded"`` lists what was mapped.
    Raises :class:`CheckpointError` naming the file and the problem for missing, truncated, corrupt
    or mismatched files.
    """
    from eegmamba import build_model

    folder = _folder(path)
    meta = read_metadata(folder)
    weights = folder / WEIGHTS
    meta_path = folder / METADATA
    if not weights.is_file():
        raise CheckpointError(f"{weights}: missing")
    if _sha256(weights) != meta["weights_sha256"]:
        raise CheckpointError(
            f"{weights}: contents do not match {METADATA} (sha256 differs): the file is truncated, "
            "corrupt, or belongs to another checkpoint"
        )
    try:
        config = meta["config"]
        if backend is not None:
            config = {**config, "backend": backend} if "backend" in config else config
        model = build_model(meta["variant"], config)
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"{meta_path}: cannot rebuild variant {meta['variant']!r}: {exc}") from None
    try:
        with safe_open(str(weights), framework="pt", device="cpu") as f:
            file_variant = (f.metadata() or {}).get("variant")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights}: unreadable safetensors file ({exc})") from None
    if file_variant is not None and file_variant != meta["variant"]:
        raise CheckpointError(
            f"{weights}: weights are for variant {file_variant!r} but {METADATA} says {meta['variant']!r}"
        )
    upgrade = getattr(model, "upgrade_state_dict", None)
    upgraded = upgrade(tensors) if upgrade is not None else []
    if upgraded:  # an older version's tensor names, mapped; the record says so
        meta = {**meta, "upgraded": upgraded}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{weights}: tensors do not match variant {meta['variant']!r}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CheckpointError(
                f"{weights}: tensor {name!r} has shape {tuple(tensor.shape)}, the config in "
                f"{METADATA} needs {tuple(expected[name].shape)}"
            )
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval(), meta


# ------------------------------------------------------------------------------------ the contract
OVERRIDE_FLAG = "--profile-over-checkpoint"

#: Profile fields that do not change a window's probabilities (dotted paths; a prefix covers its
#: sub-fields), with why. Where a given profile differs from a checkpoint's only in these, it runs
#: and the differences are listed as information. Every other field is part of the contract,
#: including fields added to the profile later: the comparison walks the dataclass fields, so a new
#: field is compared unless it is named here. The quality rules are not here on purpose: they do not
#: change a window's probabilities but decide which windows get any, and a checkpoint's validation
#: holds for the windows its rules let through.
LIVE_ONLY = {
    "name": "a label",
    "task": "a label",
    "description": "text",
    "window.hop_s": "how often a live window is cut",
    "window.train_hop_s": "training and calibration crops",
    "smoothing": "applied to the probabilities after the model",
    "labels": "scoring and calibration cues",
    "subject_aliases": "cross-validation grouping",
    "augmentation": "training only, never live",
    "channels.aliases": "how stream channels are found, like --channel-map",
}


@dataclass(frozen=True)
class Difference:
    """One field (dotted path, e.g. ``filter.l_freq``) where a given profile differs from the one
    stored in a checkpoint; ``stored`` / ``given``: the two values."""

    field: str
    stored: Any
    given: Any

    @property
    def live_only(self) -> bool:
        return any(self.field == k or self.field.startswith(k + ".") for k in LIVE_ONLY)

    def describe(self) -> str:
        return f"{self.field} {_fmt(self.stored)} in the checkpoint, {_fmt(self.given)} in the profile"


@dataclass(frozen=True)
class Contract:
    """How a checkpoint runs: the result of :func:`check_checkpoint`.

    ``profile``: the profile to run. ``stored``: the one stored in the checkpoint (None: saved
    without one). ``given``: the profile named beside it (None: the checkpoint alone).
    ``differences``: stored vs given, every differing field. ``overridden``: the given profile runs
    although it differs in contract fields. ``task``: the checkpoint's task (metadata key).
    ``spec``: the model's ``TaskSpec`` for it (None when no model was given).
    """

    profile: Profile
    stored: Profile | None
    given: Profile | None
    differences: tuple[Difference, ...]
    overridden: bool
    task: str | None
    where: str
    spec: Any = None

    @property
    def contract_differences(self) -> tuple[Difference, ...]:
        return tuple(d for d in self.differences if not d.live_only)

    @property
    def live_only_differences(self) -> tuple[Difference, ...]:
        return tuple(d for d in self.differences if d.live_only)

    def notes(self) -> list[tuple[str, str]]:
        """``(level, line)`` for each thing a user should know about how this checkpoint runs:
        ``warning``: the override, a checkpoint without a profile; ``info``: live-only settings
        taken from the given profile."""
        name, out = self.profile.name, []
        if self.stored is None:
            out.append(("warning", f"{name}: {self.where} stores no profile; profile "
                        f"{self.profile.source} runs as given, checked only against the model's "
                        "channels, rate, window and classes"))
        if self.overridden:
            out.append(("warning", f"{name}: profile {self.profile.source} runs OVER the "
                        f"checkpoint's ({OVERRIDE_FLAG}): "
                        + "; ".join(d.describe() for d in self.contract_differences)))
        live = [d for d in self.live_only_differences if d.field not in ("name", "description")]
        if live:
            out.append(("info", f"{name}: live-only settings from profile {self.profile.source} "
                        "(the checkpoint's numbers are unchanged): "
                        + "; ".join(d.describe() for d in live)))
        return out


def _fmt(v: Any, limit: int = 240) -> str:
    if isinstance(v, (tuple, list)):
        text = "[" + ", ".join(_fmt(x, limit) for x in v) + "]"
    elif isinstance(v, float):
        text = f"{v:g}"
    elif isinstance(v, Mapping):
        text = "{" + ", ".join(f"{k}: {_fmt(x, limit)}" for k, x in v.items()) + "}"
    else:
        text = "none" if v is None else str(v)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _fields(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Dataclass ``obj`` flattened to ``{dotted path: value}``: nested dataclasses are recursed,
    fields declared ``compare=False`` (``Profile.source``: where it was read from) left out."""
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        return {prefix: obj}
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if f.compare:
            out.update(_fields(getattr(obj, f.name), f"{prefix}.{f.name}" if prefix else f.name))
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-12)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return dict(a) == dict(b)
    return a == b


def profile_differences(stored: Profile, given: Profile) -> list[Difference]:
    """Every field where ``given`` differs from ``stored``, in the dataclass's field order."""
    a, b = _fields(stored), _fields(given)
    return [Difference(k, a.get(k), b.get(k)) for k in dict.fromkeys([*a, *b])
            if not _same(a.get(k), b.get(k))]


def _stored_profile(meta: dict, task: str | None, where: str) -> tuple[str | None, Profile | None]:
    """``(task key, profile)`` stored in checkpoint metadata (``meta`` = the whole model.json):
    ``metadata.tasks[task].profile`` (eegmamba-train), else a single ``metadata.profile``; ``(task,
    None)`` when the checkpoint stores none."""
    md = meta.get("metadata") or {}
    tasks = md.get("tasks")
    if tasks:
        if task is None:
            if len(tasks) != 1:
                raise CheckpointError(f"{where}: checkpoint has tasks {sorted(tasks)}; choose one "
                                      "with --task")
            task = next(iter(tasks))
        if task not in tasks:
            raise CheckpointError(f"{where}: no task {task!r} in the checkpoint (tasks: {sorted(tasks)})")
        d = tasks[task].get("profile") if isinstance(tasks[task], Mapping) else None
    else:
        d = md.get("profile")
    if not isinstance(d, Mapping):
        return task, None
    return task, Profile.from_dict(d, source=f"{where} (profile {d.get('name', task)})")


def checkpoint_profile(meta: dict, task: str | None, where: str) -> Profile:
    """The profile of ``task`` stored in checkpoint metadata (``meta`` = the whole model.json);
    a user error when the checkpoint stores none."""
    return check_checkpoint(meta, task=task, where=where).profile


def _spec_problems(spec, profile: Profile, shape_only: bool) -> list[str]:
    """Where the model's ``TaskSpec`` does not take the windows ``profile`` makes (``shape_only``:
    only what the model could not run with at all: channel, sample and class counts)."""
    problems = []
    if spec.n_chans != profile.n_channels:
        problems.append(f"model has {spec.n_chans} channels, profile {profile.n_channels}")
    elif not shape_only and spec.ch_names and tuple(spec.ch_names) != tuple(profile.channels.names):
        problems.append(f"model channels {_fmt(spec.ch_names)}, profile {_fmt(profile.channels.names)}")
    if spec.n_times != profile.window_samples:
        problems.append(f"model windows {spec.n_times} samples, profile {profile.window_samples}")
    if not shape_only and abs(spec.sfreq - profile.sfreq) > 1e-6:
        problems.append(f"model rate {spec.sfreq:g} Hz, profile {profile.sfreq:g} Hz")
    if spec.n_classes != len(profile.classes):
        problems.append(f"model has {spec.n_classes} classes, profile {len(profile.classes)}")
    elif not shape_only and spec.class_names and tuple(spec.class_names) != tuple(profile.classes):
        problems.append(f"model classes {_fmt(spec.class_names)}, profile {_fmt(profile.classes)}")
    return problems


def _model_spec(model, task: str | None):
    tasks = model.config.tasks
    return tasks[0] if len(tasks) == 1 or task is None else model.config.task(task)


def check_checkpoint(meta: dict, profile: Profile | None = None, *, model=None,
                     task: str | None = None, where: str = "checkpoint", override: bool = False,
                     remedy: str | None = None) -> Contract:
    """The one check between a checkpoint and the profile it runs under; returns the :class:`Contract`.

    Parameters
    ----------
    meta : dict, the checkpoint's whole ``model.json`` (``read_metadata`` / ``load_checkpoint``)
    profile : Profile, optional, a profile given beside the checkpoint (``--profile``); None: the
        checkpoint alone runs with the profile stored in it
    model : the loaded model, optional: its ``TaskSpec`` (channels, window samples, rate, classes)
        must match the stored profile, and take the windows of the profile that runs
    task : str, optional, the task of a multi-task checkpoint (default: its only one)
    where : str, names the checkpoint in messages
    override : bool, run ``profile`` even where it differs in a contract field (the caller shows
        :meth:`Contract.notes`)
    remedy : str, optional, what the user can do, appended to the mismatch error

    Raises :class:`CheckpointError`, one line: no profile anywhere; a model inconsistent with the
    stored profile; ``profile`` differing in contract fields (each named with both values) unless
    ``override``; a model that cannot take the windows of the profile that runs.
    """
    task, stored = _stored_profile(meta, task, where)
    if stored is None and profile is None:
        raise CheckpointError(f"{where}: the checkpoint stores no profile (was it saved by "
                              "eegmamba-train?); name the profile it was trained with (--profile)")
    diffs = tuple(profile_differences(stored, profile)) if stored is not None and profile else ()
    contract = [d for d in diffs if not d.live_only]
    if contract and not override:
        remedy = remedy or (f"run the checkpoint without --profile to use its own, or add "
                            f"{OVERRIDE_FLAG} to run the profile's settings anyway")
        raise CheckpointError(f"{where} does not fit profile {profile.name!r} ({profile.source}): "
                              + "; ".join(d.describe() for d in contract) + f" ({remedy})")
    run = stored if profile is None else profile
    spec = _model_spec(model, task) if model is not None else None
    if spec is not None:
        if stored is not None:
            problems = _spec_problems(spec, stored, shape_only=False)
            if problems:
                raise CheckpointError(f"{where}: checkpoint is inconsistent (model vs its stored "
                                      "profile): " + "; ".join(problems))
        problems = _spec_problems(spec, run, shape_only=bool(contract))
        if problems:
            raise CheckpointError(f"{where} does not fit profile {run.name!r}: " + "; ".join(problems))
    return Contract(run, stored, profile, diffs, bool(contract), task, where, spec)
