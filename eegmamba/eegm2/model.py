"""EEGM2 (Hong et al. 2025, arXiv 2502.17873): a Mamba-2 U-Net that reconstructs its EEG input.

Built as the official code builds it (``Code/models/EEGM2.py`` @ 0fade32), with the same module
names so official state dicts load (``input_embedding``, ``encoder1``..``encoder3``, ``bottleneck``,
``decoder3``/``decodeMamba3``, ``decoder2``/``decodeMamba2``, ``decoder1``, ``onput_embedding`` [sic]):

====================  ===============================================================  ===========
stage                 op                                                               out
====================  ===============================================================  ===========
input_embedding       Conv1d k=1, 3, 7 (C_in → w) in parallel, concat, Conv1d k=1 → w   (B, w, T)
encoder1 → x1         Linear(w, w) → [Mamba2(w), LayerNorm] + residual                 (B, w, T)
encoder2 → x2         MaxPool 2 → Conv1d(w → 2w, k3)                                   (B, 2w, T/2)
encoder3 → x3         MaxPool 2 → Conv1d(2w → 4w, k3)                                  (B, 4w, T/4)
pool3 → x3p           MaxPool 2 (the EEGM2-Light output)                               (B, 4w, T/8)
bottleneck            Linear → [Mamba2(4w), LayerNorm] + res → Linear                  (B, 4w, T/8)
decoder3              upsample to T/4, cat x3, Conv1d(8w → 4w) → [Mamba2, LN] + res    (B, 4w, T/4)
decoder2              upsample to T/2, cat x2, Conv1d(6w → 2w) → [Mamba2, LN] + res    (B, 2w, T/2)
decoder1              upsample to T, cat x1, Conv1d(3w → w)                            (B, w, T)
onput_embedding       Conv1d(w → C_out, k1)                                            (B, C_out, T)
====================  ===============================================================  ===========

w = ``base`` = 64. Upsampling is linear interpolation to the skip's length, so any T >= 8 works.
There is no nonlinearity between the convs (as in the official code). The paper describes the
block as "Mamba-2 + norm + residual" without the order; we follow the code: the LayerNorm acts on
the Mamba-2 output before the residual sum (neither pre- nor post-norm).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from eegmamba.eegm2.config import EEGM2Config
from eegmamba.eegm2.mamba2 import Mamba2
from eegmamba.registry import register_variant

#: Top-level modules of the encoder (EEGM2-Light); their state-dict keys are a prefix subset of EEGM2's.
ENCODER_MODULES = ("input_embedding", "encoder1", "encoder2", "encoder3")


class MultiBranchEmbedding(nn.Module):
    """Multi-receptive-field input embedding: kernels 1, 3, 7 in parallel, fused by a 1x1 conv.

    x : Tensor, shape (B, C_in, T) → (B, width, T).
    """

    def __init__(self, in_chans: int, width: int) -> None:
        super().__init__()
        self.branch1 = nn.Conv1d(in_chans, width, kernel_size=1)
        self.branch3 = nn.Conv1d(in_chans, width, kernel_size=3, padding=1)
        self.branch7 = nn.Conv1d(in_chans, width, kernel_size=7, padding=3)
        self.fuse = nn.Conv1d(3 * width, width, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fuse(torch.cat([self.branch1(x), self.branch3(x), self.branch7(x)], dim=1))


class MambaResidual(nn.Module):
    """``x + LayerNorm(Mamba2(x))`` (official ``SelfSupervisedMambaModel``). x : (B, L, d_model)."""

    def __init__(self, d_model: int, **mamba_kwargs: Any) -> None:
        super().__init__()
        self.mamba = Mamba2(d_model, **mamba_kwargs)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.norm(self.mamba(x))


def _time_major(module: nn.Module, x: Tensor) -> Tensor:
    """Apply a (B, L, D) module to a (B, D, L) tensor."""
    return module(x.transpose(1, 2)).transpose(1, 2)


class EEGM2Encoder(nn.Module):
    """The encoder prefix of EEGM2 ("EEGM2-Light", official ``EEGM2_Light``): x → x3p.

    Parameters
    ----------
    config : EEGM2Config

    ``forward(x)`` with ``x : Tensor, shape (B, n_chans, T)``, T >= 8, returns
    ``Tensor, shape (B, 4·base, T // 8)``.
    """

    def __init__(self, config: EEGM2Config) -> None:
        super().__init__()
        self.config = config
        w, mk = config.base, config.mamba_kwargs()
        self.input_embedding = MultiBranchEmbedding(config.n_chans, w)
        self.encoder1 = nn.Sequential(nn.Linear(w, w), MambaResidual(w, **mk))
        self.pool1 = nn.MaxPool1d(2, 2)
        self.encoder2 = nn.Conv1d(w, 2 * w, kernel_size=3, padding=1)
        self.pool2 = nn.MaxPool1d(2, 2)
        self.encoder3 = nn.Conv1d(2 * w, 4 * w, kernel_size=3, padding=1)
        self.pool3 = nn.MaxPool1d(2, 2)

    @property
    def out_features(self) -> int:
        """Feature channels of the encoder output (4·base)."""
        return 4 * self.config.base

    def check_input(self, x: Tensor) -> None:
        """Raise ValueError naming both values when ``x`` does not fit the configured signal."""
        if x.ndim != 3:
            raise ValueError(f"EEGM2 expects x of shape (batch, channels, time), got {tuple(x.shape)}")
        if x.shape[1] != self.config.n_chans:
            raise ValueError(f"EEGM2 was built for {self.config.n_chans} channels, got {x.shape[1]}")
        if x.shape[2] < 8:
            raise ValueError(f"EEGM2 needs at least 8 time samples (three 2x poolings), got {x.shape[2]}")

    def encode_levels(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """x : (B, C, T) → (x1 (B, w, T), x2 (B, 2w, T/2), x3 (B, 4w, T/4), x3p (B, 4w, T/8))."""
        self.check_input(x)
        x1 = _time_major(self.encoder1, self.input_embedding(x))
        x2 = self.encoder2(self.pool1(x1))
        x3 = self.encoder3(self.pool2(x2))
        return x1, x2, x3, self.pool3(x3)

    def forward(self, x: Tensor) -> Tensor:
        return self.encode_levels(x)[-1]


class EEGM2(EEGM2Encoder):
    """EEGM2 autoencoder: ``model(x) -> recon``, both ``Tensor, shape (B, C, T)`` (µV or scaled).

    The encoder attributes are inherited, so :meth:`encoder_state_dict` is a prefix subset of the
    state dict that loads into :class:`EEGM2Encoder` with the same config.
    """

    def __init__(self, config: EEGM2Config) -> None:
        super().__init__(config)
        w, mk = config.base, config.mamba_kwargs()
        c = 4 * w
        self.bottleneck = nn.Sequential(nn.Linear(c, c), MambaResidual(c, **mk), nn.Linear(c, c))
        self.decoder3 = nn.Conv1d(2 * c, c, kernel_size=3, padding=1)
        self.decodeMamba3 = MambaResidual(c, **mk)
        self.decoder2 = nn.Conv1d(2 * w + c, 2 * w, kernel_size=3, padding=1)
        self.decodeMamba2 = MambaResidual(2 * w, **mk)
        self.decoder1 = nn.Conv1d(w + 2 * w, w, kernel_size=3, padding=1)
        self.onput_embedding = nn.Conv1d(w, config.out_chans, kernel_size=1)  # sic, official name

    def forward(self, x: Tensor) -> Tensor:
        x1, x2, x3, x3p = self.encode_levels(x)
        up = F.interpolate(_time_major(self.bottleneck, x3p), size=x3.shape[-1], mode="linear",
                           align_corners=False)
        d3 = _time_major(self.decodeMamba3, self.decoder3(torch.cat([x3, up], dim=1)))
        up = F.interpolate(d3, size=x2.shape[-1], mode="linear", align_corners=False)
        d2 = _time_major(self.decodeMamba2, self.decoder2(torch.cat([x2, up], dim=1)))
        up = F.interpolate(d2, size=x1.shape[-1], mode="linear", align_corners=False)
        return self.onput_embedding(self.decoder1(torch.cat([x1, up], dim=1)))

    def encoder_state_dict(self) -> dict[str, Tensor]:
        """The encoder's tensors (keys under :data:`ENCODER_MODULES`), detached, for EEGM2Encoder."""
        return {k: v.detach() for k, v in self.state_dict().items()
                if k.split(".", 1)[0] in ENCODER_MODULES}


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


@register_variant("eegm2", EEGM2, EEGM2Config)
def eegm2(n_chans: int = 16, **overrides: Any) -> EEGM2Config:
    """EEGM2 as in the official code: base 64, Mamba-2 d_state 16, d_conv 2, expand 8, headdim 64."""
    return EEGM2Config(n_chans=n_chans, **overrides)


@register_variant("eegm2_light", EEGM2Encoder, EEGM2Config)
def eegm2_light(n_chans: int = 16, **overrides: Any) -> EEGM2Config:
    """EEGM2-Light: the encoder only (embedding, encoder1-3), output (B, 256, T/8)."""
    return EEGM2Config(n_chans=n_chans, **overrides)


@register_variant("eegm2_tiny", EEGM2, EEGM2Config)
def eegm2_tiny(n_chans: int = 16, **overrides: Any) -> EEGM2Config:
    """A tiny EEGM2 for tests: every block of the full model, base 16, expand 2, headdim 16."""
    return EEGM2Config(n_chans=n_chans, **{"base": 16, "expand": 2, "headdim": 16, **overrides})
