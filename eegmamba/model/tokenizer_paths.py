"""Tokenizer path variants (issue 17): the small- and wide-kernel convolution *modules* of the
paper's ST-Adaptive tokenizer (Section 2.2, Eq. 6), which fixes their place (after the
spatial-adaptive conv, before the class token) but not their kernels, conv type or depth.

Every path maps ``y (B, D, L)`` (the spatial-adaptive conv's D outputs, 200 Hz) and a task name to
tokens ``(B, N, D)`` and says how many tokens a window makes (``n_tokens(L)``). Kinds
(``EEGMambaConfig.tokenizer``):

- ``conv`` (:class:`eegmamba.model.tokenizer.ConvPath`): a dense ``Conv1d(D, D, k, stride)``; with
  ``tokenizer_groups`` > 1 a grouped one. The original; at D = 128 the wide path alone holds 1.64 M
  parameters (75 % of the model).
- ``filterbank`` (:class:`FilterBankPath`): EEGNet's / ShallowConvNet's inductive bias. A depthwise
  temporal filter of ``kernel`` samples on each of the D spatial filters (50 and 100 samples at
  200 Hz = EEGNet's 0.25–0.5 s), then the log of the mean power over windows of ``2·stride``
  samples every ``stride`` (band power, what CSP and the mu/beta rhythms carry), then a pointwise
  conv that mixes the D log-powers into a token.
- ``separable`` (:class:`SeparablePath`): the conv path's geometry (kernel, stride) as a depthwise
  conv followed by a pointwise one (D·k + D² instead of D²·k weights).
- ``stack`` (:class:`StackPath`): small grouped convs (``stack_kernel`` samples) each followed by
  average pooling, the pools multiplying to the path's stride (50 = 2·5·5): the wide receptive
  field (~ 100 samples for the wide path) from a few small kernels.

Inside every path, ``dropout`` on the token features and ``drop_path``: during training each
window's whole path is zeroed with that probability (the survivors scaled by ``1 / (1 - p)``), so
the model cannot lean on one path (stochastic depth over the two parallel modules).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

PATH_KINDS = ("conv", "filterbank", "separable", "stack")


class TokenDrop(nn.Module):
    """Dropout on features and path drop on ``t (B, N, D)`` (module docstring); identity in eval."""

    def __init__(self, dropout: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.drop_path = drop_path

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        t = self.dropout(t)
        if self.training and self.drop_path > 0:
            keep = (torch.rand(t.shape[0], 1, 1, device=t.device) >= self.drop_path).to(t.dtype)
            t = t * keep / (1.0 - self.drop_path)
        return t


def fft_length(L: int, padding: int) -> int:
    """The FFT length for :func:`depthwise_fft` of ``L`` samples: the smallest even 2·3·5-smooth
    n ≥ L + padding (a circular convolution of that length leaves the kept outputs free of
    wrap-around; see there). Even 5-smooth sizes are what MKL/pocketfft do fastest: at L = 600,
    k = 100 (n ≥ 650) 720 points took 115 µs for rfft + irfft of (1, 64, ·) against 124 µs at the
    power of two 1024 and 316 µs at the odd 675; at batch 8 900 vs 1978 µs (one core)."""
    need = max(L + padding, 2)
    n = need + (need % 2)
    while True:
        m = n
        for f in (2, 3, 5):
            while m % f == 0:
                m //= f
        if m == 1:
            return n
        n += 2


def depthwise_fft(y: torch.Tensor, weight: torch.Tensor, padding: int, n_fft: int | None = None,
                  y_spec: torch.Tensor | None = None, w_spec: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """``F.conv1d(y, weight, padding=padding, groups=D)`` for ``y (B, D, L)``, ``weight (D, 1, k)``,
    computed by FFT: oneDNN's depthwise conv with a 50–100-sample kernel took ~11 ms per 3 s window
    on one core (torch profiler), the FFT ~0.3 ms. Same function up to float32 rounding.

    ``n_fft``: the FFT length (default :func:`fft_length`; any n ≥ L + padding gives the same
    result). ``y_spec`` = ``rfft(y, n_fft)`` and ``w_spec`` =
    ``rfft(weight[:, 0].flip(-1), n_fft)`` when the caller has them (one spectrum of ``y`` for both
    tokenizer paths; a cached one of the weight in inference).
    """
    L, k = y.shape[-1], weight.shape[-1]
    n_out = L + 2 * padding - k + 1
    n = n_fft or fft_length(L, padding)
    if n < L + padding:
        raise ValueError(f"n_fft {n} < L + padding = {L + padding}: the circular convolution would wrap")
    if y_spec is None:
        y_spec = torch.fft.rfft(y, n)
    if w_spec is None:
        w_spec = torch.fft.rfft(weight[:, 0].flip(-1), n)
    # circular: c[t] = full[t] + full[t + n] with full[t] = sum_j w[j] y[t - (k-1) + j] (length
    # L + k - 1); the kept outputs t in [k-1-padding, L+padding) hold no wrapped term when n >= L + padding
    full = torch.fft.irfft(y_spec * w_spec, n)
    start = k - 1 - padding
    return full[..., start:start + n_out]


def _norm(d: int, tasks: tuple[str, ...]):
    from eegmamba.model.tokenizer import TaskBatchNorm  # tokenizer imports this module

    return TaskBatchNorm(d, tasks)


class FilterBankPath(nn.Module):
    """Depthwise temporal filters → log mean power → pointwise mix (module docstring).

    ``y (B, D, L)`` → ``(B, (L - 2·stride) // stride + 1, D)``.
    """

    def __init__(self, d_model: int, kernel: int, stride: int, tasks: tuple[str, ...],
                 dropout: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.kernel, self.stride, self.pool = kernel, stride, 2 * stride
        self.temporal = nn.Conv1d(d_model, d_model, kernel, padding=kernel // 2, groups=d_model,
                                  bias=False)
        self.norm_in = _norm(d_model, tasks)
        self.mix = nn.Conv1d(d_model, d_model, 1)
        self.norm = _norm(d_model, tasks)
        self.act = nn.GELU()
        self.drop = TokenDrop(dropout, drop_path)

    def n_tokens(self, n_times: int) -> int:
        return max(0, (n_times - self.pool) // self.stride + 1)

    def weight_spectrum(self, n_fft: int) -> torch.Tensor | None:
        """``rfft`` of the temporal filters at ``n_fft``, cached while the model only infers
        (eval, and no gradient wanted for them; the cache follows in-place weight updates through
        the tensor's version counter); None when a fresh one must be computed (training)."""
        w = self.temporal.weight
        if self.training or (torch.is_grad_enabled() and w.requires_grad):
            return None
        key = (n_fft, w._version, w.data_ptr(), w.dtype, w.device)
        cached = getattr(self, "_w_spec", None)
        if cached is None or cached[0] != key:
            with torch.no_grad():
                cached = (key, torch.fft.rfft(w[:, 0].flip(-1), n_fft))
            self._w_spec = cached
        return cached[1]

    def forward(self, y: torch.Tensor, task: str, y_spec: tuple[int, torch.Tensor] | None = None
                ) -> torch.Tensor:
        """``y_spec``: ``(n_fft, rfft(y, n_fft))`` when the tokenizer computed it once for both paths
        (``n_fft`` ≥ :func:`fft_length` of this path)."""
        n, spec = y_spec if y_spec is not None else (fft_length(y.shape[-1], self.kernel // 2), None)
        z = depthwise_fft(y, self.temporal.weight, self.kernel // 2, n, spec, self.weight_spectrum(n))
        z = self.norm_in(z[..., : y.shape[-1]], task)
        power = F.avg_pool1d(z * z, self.pool, self.stride)  # (B, D, N)
        t = self.act(self.norm(self.mix(torch.log(power + 1e-4)), task))
        return self.drop(t.transpose(1, 2))


class SeparablePath(nn.Module):
    """Depthwise ``Conv1d(D, D, k, stride, groups=D)`` → pointwise ``Conv1d(D, D, 1)`` → norm → GELU.

    ``y (B, D, L)`` → ``(B, N, D)`` with the conv path's token count.
    """

    def __init__(self, d_model: int, kernel: int, stride: int, tasks: tuple[str, ...],
                 dropout: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.depthwise = nn.Conv1d(d_model, d_model, kernel, stride=stride, padding=kernel // 2,
                                   groups=d_model, bias=False)
        self.pointwise = nn.Conv1d(d_model, d_model, 1)
        self.norm = _norm(d_model, tasks)
        self.act = nn.GELU()
        self.drop = TokenDrop(dropout, drop_path)

    def n_tokens(self, n_times: int) -> int:
        return (n_times + 2 * (self.kernel // 2) - self.kernel) // self.stride + 1

    def forward(self, y: torch.Tensor, task: str) -> torch.Tensor:
        t = self.act(self.norm(self.pointwise(self.depthwise(y)), task))
        return self.drop(t.transpose(1, 2))


def pool_factors(stride: int) -> tuple[int, ...]:
    """``stride`` as a product of small pools, smallest first: 50 → (2, 5, 5), 8 → (2, 2, 2)."""
    out, n, f = [], stride, 2
    while n > 1:
        while n % f == 0:
            out.append(f)
            n //= f
        f += 1
    return tuple(out) or (1,)


class StackPath(nn.Module):
    """``[grouped Conv1d(D, D, k) → norm → GELU → AvgPool(p)]`` for each ``p`` of
    :func:`pool_factors` (``stride``). ``y (B, D, L)`` → ``(B, L // stride, D)`` (floor at each pool).
    """

    def __init__(self, d_model: int, kernel: int, stride: int, tasks: tuple[str, ...],
                 groups: int = 8, dropout: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        if d_model % groups:
            raise ValueError(f"d_model {d_model} is not a multiple of tokenizer_groups {groups}")
        self.kernel, self.stride, self.pools = kernel, stride, pool_factors(stride)
        self.convs = nn.ModuleList(nn.Conv1d(d_model, d_model, kernel, padding=kernel // 2,
                                             groups=groups) for _ in self.pools)
        self.norms = nn.ModuleList(_norm(d_model, tasks) for _ in self.pools)
        self.act = nn.GELU()
        self.drop = TokenDrop(dropout, drop_path)

    def n_tokens(self, n_times: int) -> int:
        for p in self.pools:
            n_times //= p
        return n_times

    def forward(self, y: torch.Tensor, task: str) -> torch.Tensor:
        for conv, norm, p in zip(self.convs, self.norms, self.pools):
            y = F.avg_pool1d(self.act(norm(conv(y)[..., : y.shape[-1]], task)), p)
        return self.drop(y.transpose(1, 2))
