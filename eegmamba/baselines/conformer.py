"""EEG Conformer — our implementation from the paper (Song et al., 2023, IEEE TNSRE 31:710-719,
"EEG Conformer: Convolutional Transformer for EEG Decoding and Visualization").

Written by us from the paper's Section II and Fig. 1, not copied from braindecode (whose version does
not import with the torch used here, because of its torchaudio dependency). It is the Transformer
baseline that EEGMamba is compared against in the EEGMamba paper (Fig. 4, Appendix I, Tables 9/10).

Blocks (paper, Section II-B to II-D):

1. Convolution module (patch embedding): temporal conv ``1 x 25`` with 40 filters, spatial conv
   ``C x 1`` with 40 filters, BatchNorm, ELU, average pooling ``1 x 75`` stride ``15``, dropout, and a
   ``1 x 1`` conv projection; the pooled time axis becomes the token axis (``n_tokens`` tokens of 40
   features each).
2. Self-attention module: 6 pre-norm Transformer encoder layers, 10 heads, feed-forward expansion 4.
3. Classifier: flatten all tokens, then a 3-layer MLP (256 and 32 hidden units, ELU) to the classes.

Where the paper is silent or specific to its 250 Hz data, our choices (each configurable):

* Kernel sizes are kept as published (25 / 75 / 15 samples) although we run at 200 Hz, so the
  temporal kernel spans 125 ms instead of 100 ms.
* Attention is computed explicitly (scores, softmax, dropout), the way the authors' released code
  does; this is what the EEGMamba paper's memory numbers measure (they grow with ``n_tokens**2``).
  ``attention="sdpa"`` uses ``torch.nn.functional.scaled_dot_product_attention`` instead. Scores are
  scaled by ``1/sqrt(head_dim)`` (the Transformer convention; the released code divides by
  ``sqrt(emb_size)`` after the softmax input, which only rescales the logits).
* Dropout 0.5 in the convolution module, attention and feed-forward, 0.5 / 0.3 in the classifier.
* Any channel count and any window length ``n_times >= temporal_kernel + pool_size - 1`` work; the
  classifier's input width is derived from ``n_times`` at construction, so a model serves one window
  length (as in the paper) and rejects others with a message naming both values.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from eegmamba._checks import check_option

ATTENTIONS = ("explicit", "sdpa")


@dataclass(frozen=True)
class ConformerConfig:
    """Hyper-parameters of the EEG Conformer; defaults are the paper's.

    Attributes
    ----------
    n_chans : int
        Input channels ``C`` (spatial conv height).
    n_times : int
        Window length ``T`` in samples.
    n_outputs : int
        Number of classes.
    sfreq : float
        Sampling rate in Hz the model is built for (informational; kernels are in samples).
    """

    n_chans: int
    n_times: int
    n_outputs: int
    sfreq: float = 200.0
    n_filters: int = 40  # also the token (embedding) width
    temporal_kernel: int = 25
    pool_size: int = 75
    pool_stride: int = 15
    depth: int = 6
    n_heads: int = 10
    ff_expansion: int = 4
    drop_embed: float = 0.5
    drop_attn: float = 0.5
    drop_ff: float = 0.5
    fc_hidden: tuple[int, int] = (256, 32)
    drop_fc: tuple[float, float] = (0.5, 0.3)
    attention: str = "explicit"

    def __post_init__(self) -> None:
        for f in ("n_chans", "n_times", "n_outputs", "n_filters", "temporal_kernel", "pool_size",
                  "pool_stride", "depth", "n_heads", "ff_expansion"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"ConformerConfig.{f} must be a positive int, got {v!r}")
        if self.n_outputs < 2:
            raise ValueError(f"ConformerConfig.n_outputs must be >= 2, got {self.n_outputs}")
        if self.n_filters % self.n_heads:
            raise ValueError(
                f"ConformerConfig.n_filters={self.n_filters} must be divisible by "
                f"n_heads={self.n_heads}"
            )
        min_t = self.temporal_kernel + self.pool_size - 1
        if self.n_times < min_t:
            raise ValueError(
                f"ConformerConfig.n_times must be >= {min_t} samples (temporal kernel "
                f"{self.temporal_kernel} + pool {self.pool_size} - 1), got {self.n_times}"
            )
        object.__setattr__(self, "fc_hidden", tuple(self.fc_hidden))
        object.__setattr__(self, "drop_fc", tuple(self.drop_fc))
        for p in (self.drop_embed, self.drop_attn, self.drop_ff, *self.drop_fc):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"ConformerConfig dropout values must be in [0, 1), got {p}")
        check_option(self.attention, ATTENTIONS, "ConformerConfig.attention")

    @property
    def n_tokens(self) -> int:
        """Number of tokens after temporal conv (valid) and average pooling."""
        return (self.n_times - self.temporal_kernel + 1 - self.pool_size) // self.pool_stride + 1


class PatchEmbedding(nn.Module):
    """Convolution module: ``(B, C, T)`` → tokens ``(B, n_tokens, n_filters)``."""

    def __init__(self, cfg: ConformerConfig) -> None:
        super().__init__()
        k = cfg.n_filters
        self.temporal = nn.Conv2d(1, k, (1, cfg.temporal_kernel))
        self.spatial = nn.Conv2d(k, k, (cfg.n_chans, 1))
        self.bn = nn.BatchNorm2d(k)
        self.pool = nn.AvgPool2d((1, cfg.pool_size), (1, cfg.pool_stride))
        self.drop = nn.Dropout(cfg.drop_embed)
        self.project = nn.Conv2d(k, k, (1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.spatial(self.temporal(x.unsqueeze(1)))  # (B, k, 1, T - kernel + 1)
        x = self.drop(self.pool(F.elu(self.bn(x))))  # (B, k, 1, n_tokens)
        return self.project(x).squeeze(2).transpose(1, 2)  # (B, n_tokens, k)


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention on ``(B, N, E)``; explicit scores or PyTorch's fused SDPA."""

    def __init__(self, emb: int, n_heads: int, dropout: float, mode: str) -> None:
        super().__init__()
        self.n_heads, self.mode, self.p = n_heads, mode, dropout
        self.qkv = nn.Linear(emb, 3 * emb)
        self.out = nn.Linear(emb, emb)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, e = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.n_heads, e // self.n_heads).permute(2, 0, 3, 1, 4)
        if self.mode == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.p if self.training else 0.0)
        else:
            scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)  # (B, H, N, N)
            y = self.drop(scores.softmax(dim=-1)) @ v
        return self.out(y.transpose(1, 2).reshape(b, n, e))


class EncoderLayer(nn.Module):
    """Pre-norm Transformer encoder layer: ``x + MHA(LN(x))``, then ``x + FFN(LN(x))``."""

    def __init__(self, cfg: ConformerConfig) -> None:
        super().__init__()
        e = cfg.n_filters
        self.norm1 = nn.LayerNorm(e)
        self.attn = MultiHeadAttention(e, cfg.n_heads, cfg.drop_attn, cfg.attention)
        self.drop1 = nn.Dropout(cfg.drop_attn)
        self.norm2 = nn.LayerNorm(e)
        self.ff = nn.Sequential(
            nn.Linear(e, cfg.ff_expansion * e), nn.GELU(), nn.Dropout(cfg.drop_ff),
            nn.Linear(cfg.ff_expansion * e, e),
        )
        self.drop2 = nn.Dropout(cfg.drop_ff)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop1(self.attn(self.norm1(x)))
        return x + self.drop2(self.ff(self.norm2(x)))


class EEGConformer(nn.Module):
    """EEG Conformer (Song et al., 2023) — our implementation from the paper.

    Parameters
    ----------
    config : ConformerConfig
        Shapes the model expects and its hyper-parameters.

    ``forward(x)`` takes ``x : Tensor, shape (B, n_chans, n_times)``, float, µV or normalized
    (as the training pipeline delivers), and returns logits ``(B, n_outputs)``.
    """

    def __init__(self, config: ConformerConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = PatchEmbedding(config)
        self.encoder = nn.Sequential(*(EncoderLayer(config) for _ in range(config.depth)))
        h1, h2 = config.fc_hidden
        d1, d2 = config.drop_fc
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(config.n_tokens * config.n_filters, h1), nn.ELU(), nn.Dropout(d1),
            nn.Linear(h1, h2), nn.ELU(), nn.Dropout(d2),
            nn.Linear(h2, config.n_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"EEGConformer input must be a torch.Tensor, got {type(x).__name__}")
        c, t = self.config.n_chans, self.config.n_times
        if x.dim() != 3 or x.shape[1] != c or x.shape[2] != t:
            raise ValueError(
                f"EEGConformer expects input of shape (B, {c}, {t}) (B, n_chans, n_times); "
                f"got {tuple(x.shape)}"
            )
        return self.classifier(self.encoder(self.embed(x)))


def create_conformer(n_chans: int, n_times: int, n_outputs: int, **kwargs) -> EEGConformer:
    """Build an :class:`EEGConformer`; ``kwargs`` override :class:`ConformerConfig` defaults."""
    return EEGConformer(ConformerConfig(n_chans=n_chans, n_times=n_times, n_outputs=n_outputs,
                                        **kwargs))
