"""Dual-path tokenizer of the ST-Adaptive module (paper Section 2.2, Eq. 6).

``CNN_s`` (small kernel) and ``CNN_w`` (wide kernel) turn the spatially mixed signal ``y_SA`` into two
token sequences that are concatenated along time. The paper gives no kernel sizes or strides; the
defaults live in :class:`~eegmamba.model.config.EEGMambaConfig` and are explained there.

Normalisation is per task (:class:`TaskBatchNorm`); the paper is silent on the norm. Why per task:
the multi-task model trains on batches that each hold ONE task (Appendix E.4), so a BatchNorm shared
by all tasks normalises every training batch with that task's own statistics while its running
statistics, used at evaluation, are a mixture over tasks — each task is then evaluated with a
normalisation it never trained with (``tools/measure_task_norm.py`` at commit 9cde568, a 3-task
tiny model with its running statistics re-estimated: eval logits shifted by 16 % (MI), 16 %
(seizure), 5 % (sleep) with one shared norm, 0.2 %, 0.0 %, 0.0 % with per-task norms). A norm
without running statistics (LayerNorm, GroupNorm, or BatchNorm with
``track_running_stats=False``) would remove the gap too, but it changes the single-task model the
paper describes and, per window or per token, discards the window's overall amplitude; batch
statistics at inference would make one live window's decision depend on the others in its batch.
One BatchNorm per task keeps BatchNorm (and the single-task model exactly as it was) and makes each
task's evaluation statistics the ones it trained with (domain-specific BatchNorm, Chang et al., 2019).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from eegmamba.model.tokenizer_paths import (PATH_KINDS, FilterBankPath, SeparablePath, StackPath,
                                            TokenDrop, fft_length)
from eegmamba.ops._strided_conv import conv1d_tokens, inference_segment_weight


def n_tokens(n_times: int, kernel: int, stride: int) -> int:
    """Number of tokens one path makes from ``n_times`` samples (padding ``kernel // 2``)."""
    return (n_times + 2 * (kernel // 2) - kernel) // stride + 1


class TaskBatchNorm(nn.ModuleDict):
    """One ``BatchNorm1d(d)`` per task (see module docstring): ``x (B, d, L)``, ``task`` → ``(B, d, L)``.

    State-dict names are ``<prefix>.<task>.weight`` etc.; :func:`upgrade_shared_norm` maps the
    single shared BatchNorm of older checkpoints onto them.
    """

    def __init__(self, d: int, tasks: tuple[str, ...]) -> None:
        super().__init__({t: nn.BatchNorm1d(d) for t in tasks})

    def forward(self, x: torch.Tensor, task: str) -> torch.Tensor:
        if task not in self:
            raise ValueError(f"no normalisation for task {task!r}; this model has {list(self.keys())}")
        return self[task](x)


_BN_FIELDS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def upgrade_shared_norm(state: dict, prefix: str, tasks: tuple[str, ...]) -> bool:
    """In place: replace a shared BatchNorm's tensors ``<prefix>weight`` … by per-task copies
    ``<prefix><task>.weight`` … (checkpoints written before per-task norms); True if anything was
    replaced. Every task gets the shared statistics, so the model computes what the old one did."""
    if prefix + "weight" not in state:
        return False
    for f in _BN_FIELDS:
        if prefix + f in state:
            v = state.pop(prefix + f)
            for t in tasks:
                state[f"{prefix}{t}.{f}"] = v.clone()
    return True


class ConvPath(nn.Module):
    """One tokenizer path: ``Conv1d(D, D, kernel, stride) -> per-task BatchNorm1d -> GELU``
    (``groups`` > 1: a grouped conv; ``dropout`` / ``drop_path``: :class:`TokenDrop`, identity in eval).

    Parameters
    ----------
    d_model : int
        Hidden size ``D`` (input and output channels).
    kernel, stride : int
        Kernel size and stride in samples (at 200 Hz).
    tasks : tuple of str
        Task names (one BatchNorm each).
    """

    def __init__(self, d_model: int, kernel: int, stride: int, tasks: tuple[str, ...],
                 groups: int = 1, dropout: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv = nn.Conv1d(d_model, d_model, kernel, stride=stride, padding=kernel // 2,
                              groups=groups)
        self.norm = TaskBatchNorm(d_model, tasks)
        self.act = nn.GELU()
        self.drop = TokenDrop(dropout, drop_path)

    def n_tokens(self, n_times: int) -> int:
        return n_tokens(n_times, self.kernel, self.stride)

    def forward(self, y: torch.Tensor, task: str) -> torch.Tensor:
        """``y (B, D, L)`` → tokens ``(B, N_path, D)``."""
        if self.kernel % self.stride or self.conv.groups > 1:
            return self.drop(self.act(self.norm(self.conv(y), task)).transpose(1, 2))
        # the same conv as one GEMM, token-major (faster on CPU; _strided_conv)
        t = conv1d_tokens(y, self.conv.weight, self.conv.bias, self.stride, self.conv.padding[0],
                          inference_segment_weight(self.conv, self.stride))
        return self.drop(self.act(self.norm(t.transpose(1, 2), task)).transpose(1, 2))


class DualPathTokenizer(nn.Module):
    """``T = Concat(T(CNN_s(y_SA)), T(CNN_w(y_SA)), dim=1)`` (Eq. 6).

    Input ``y (B, D, L)`` and the task name; output ``(B, N_s + N_w, D)``, small-kernel tokens first.
    ``kind``: the paths' type (:mod:`eegmamba.model.tokenizer_paths`); ``groups`` for ``conv`` and
    ``stack``, ``stack_kernel`` for ``stack``; ``dropout`` / ``drop_path`` inside every path.
    """

    def __init__(self, d_model: int, small_kernel: int, small_stride: int, wide_kernel: int,
                 wide_stride: int, tasks: tuple[str, ...], kind: str = "conv", groups: int = 1,
                 dropout: float = 0.0, drop_path: float = 0.0, stack_kernel: int = 9) -> None:
        super().__init__()
        if kind not in PATH_KINDS:
            raise ValueError(f"tokenizer kind must be one of {PATH_KINDS}, got {kind!r}")
        self.kind = kind
        reg = {"dropout": dropout, "drop_path": drop_path}

        def path(kernel: int, stride: int) -> nn.Module:
            if kind == "conv":
                return ConvPath(d_model, kernel, stride, tasks, groups, **reg)
            if kind == "filterbank":
                return FilterBankPath(d_model, kernel, stride, tasks, **reg)
            if kind == "separable":
                return SeparablePath(d_model, kernel, stride, tasks, **reg)
            return StackPath(d_model, stack_kernel, stride, tasks, groups, **reg)

        self.small = path(small_kernel, small_stride)
        self.wide = path(wide_kernel, wide_stride)

    def n_tokens_per_path(self, n_times: int) -> tuple[int, int]:
        """``(N_s, N_w)`` for a window of ``n_times`` samples."""
        return self.small.n_tokens(n_times), self.wide.n_tokens(n_times)

    def n_tokens(self, n_times: int) -> int:
        """Total tokens ``N = N_s + N_w`` for a window of ``n_times`` samples."""
        return sum(self.n_tokens_per_path(n_times))

    def paths(self, y: torch.Tensor, task: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(small (B, N_s, D), wide (B, N_w, D))`` tokens of ``y (B, D, L)``."""
        if self.kind == "filterbank":  # one spectrum of y for both filter banks
            L = y.shape[-1]
            n = max(fft_length(L, p.kernel // 2) for p in (self.small, self.wide))
            spec = (n, torch.fft.rfft(y, n))
            return self.small(y, task, spec), self.wide(y, task, spec)
        return self.small(y, task), self.wide(y, task)

    def forward(self, y: torch.Tensor, task: str) -> torch.Tensor:
        return torch.cat(self.paths(y, task), dim=1)
