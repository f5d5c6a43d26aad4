"""Safe checkpoints: safetensors weights + a JSON metadata file, rebuilt through the model registry.

A checkpoint is a folder with ``model.safetensors`` and ``model.json``. The JSON holds the variant name,
its config, the package version and whatever the caller adds (profile, channel names, sampling rate,
window length, preprocessing parameters, training provenance). Loading validates both files and never
unpickles anything: the model is rebuilt from the registry and the tensors are checked name by name.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from eegmamba._checks import UserInputError

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
