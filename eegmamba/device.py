"""The ``--device`` option → a torch device, for every command that runs a model (training,
evaluation, pretraining and live inference import it from here, not from each other)."""

from __future__ import annotations

import torch

from eegmamba._checks import UserInputError


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA if available else CPU; ``cuda`` without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserInputError("--device cuda: no CUDA GPU is available here; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise UserInputError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)
