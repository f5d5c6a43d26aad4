"""Reconstruction loss: the official L1 + FFT term against numpy, Parseval, masking, and learning on real EEG."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import eegmamba.eegm2  # noqa: F401  (registers the variants)
from eegmamba.eegm2.loss import ReconLoss, ReconLossConfig, spectral_term
from eegmamba.registry import create_model


def _pair(shape=(3, 4, 256), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    return x, x + 0.3 * torch.randn(*shape, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("length", [256, 255])
def test_spectral_term_matches_numpy_reference(length):
    x, r = _pair((3, 4, length))
    xn, rn = x.numpy(), r.numpy()
    want = np.mean(np.abs(np.fft.rfft(xn, axis=-1) - np.fft.rfft(rn, axis=-1)) ** 2)
    got = spectral_term(x, r).item()
    assert abs(got - want) <= 1e-12 * want
    want_ortho = np.mean(np.abs(np.fft.rfft(xn, axis=-1, norm="ortho")
                                - np.fft.rfft(rn, axis=-1, norm="ortho")) ** 2)
    assert abs(spectral_term(x, r, "ortho").item() - want_ortho) <= 1e-12 * want_ortho


def test_official_total_and_parseval():
    """total = mean|e| + mean|ΔFFT|²; the FFT term ≈ T·MSE (backward) and ≈ MSE (ortho)."""
    x, r = _pair((2, 3, 1280))
    total, parts = ReconLoss()(x, r)
    l1 = np.mean(np.abs(r.numpy() - x.numpy()))
    mse = np.mean((r.numpy() - x.numpy()) ** 2)
    assert parts["l1"] == pytest.approx(l1, rel=1e-12)
    assert parts["mse"] == pytest.approx(mse, rel=1e-12)
    assert total.item() == pytest.approx(l1 + parts["spectral"], rel=1e-12) == parts["total"]
    # Σ_k w_k |E_k|² = T Σ_t e_t² (w = 1 at DC/Nyquist, 2 elsewhere) → mean over T/2+1 bins ≈ T·MSE
    assert parts["spectral"] / mse == pytest.approx(1280, rel=0.02)
    _, ortho = ReconLoss(fft_norm="ortho", alpha=0.0)(x, r)
    assert ortho["spectral"] / mse == pytest.approx(1.0, rel=0.02)
    assert ortho["total"] == pytest.approx(ortho["spectral"], rel=1e-12)


def test_gradient_is_finite_at_a_perfect_reconstruction():
    x = torch.randn(2, 3, 64, requires_grad=True)
    total, parts = ReconLoss()(x.detach(), x)
    total.backward()
    assert parts["spectral"] == 0.0 and torch.isfinite(x.grad).all()


def test_masking_hides_patches_and_scores_them():
    loss = ReconLoss(mask_ratio=0.5, mask_span=10)
    x = torch.randn(4, 3, 95) + 5.0
    xm, mask = loss.mask_input(x, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (4, 1, 95) and mask.dtype == torch.bool
    hidden_patches = mask[:, 0, ::10].sum(1)
    assert torch.all(hidden_patches == 5)  # round(0.5 · 10 patches)
    assert torch.all(xm[mask.expand_as(x)] == 0) and torch.equal(xm[~mask.expand_as(x)], x[~mask.expand_as(x)])
    # error only on visible samples → masked L1/MSE are 0; only on hidden samples → counted
    recon = x.clone()
    recon[~mask.expand_as(x)] += 1.0
    _, parts = loss(x, recon, mask)
    assert parts["l1"] == 0.0 and parts["mse"] == 0.0 and parts["spectral"] > 0
    recon = x.clone()
    recon[mask.expand_as(x)] += 2.0
    _, parts = loss(x, recon, mask)
    assert parts["l1"] == pytest.approx(2.0) and parts["mse"] == pytest.approx(4.0)
    assert ReconLoss().mask_input(x) == (x, None)


def test_loss_config_validation():
    assert ReconLossConfig.from_dict(ReconLossConfig(mask_ratio=0.3).to_dict()).mask_ratio == 0.3
    with pytest.raises(ValueError, match=r"ReconLossConfig: unknown fields \['ratio'\]"):
        ReconLossConfig.from_dict({"ratio": 0.3})
    with pytest.raises(ValueError, match="fft_norm"):
        ReconLossConfig(fft_norm="forward")
    with pytest.raises(ValueError, match="mask_ratio"):
        ReconLossConfig(mask_ratio=1.0)
    with pytest.raises(ValueError, match="both 0"):
        ReconLossConfig(alpha=0, beta=0)
    with pytest.raises(ValueError, match="differ in shape"):
        ReconLoss()(torch.zeros(1, 2, 8), torch.zeros(1, 2, 9))


def _real_windows(path, seconds=16.0, window_s=2.0):
    """Band-passed (0.5-40 Hz), 200 Hz, 2-s windows of a real recording, per-window q95 scaling."""
    mne = pytest.importorskip("mne")
    raw = mne.io.read_raw_edf(path, preload=True, verbose="error")
    raw.crop(0, seconds).filter(0.5, 40.0, verbose="error").resample(200.0, verbose="error")
    data = raw.get_data() * 1e6  # µV
    n = int(window_s * 200)
    windows = np.stack([data[:, i:i + n] for i in range(0, data.shape[1] - n + 1, n)])
    scale = np.percentile(np.abs(windows), 95, axis=-1, keepdims=True)
    return torch.tensor(windows / scale, dtype=torch.float32)


@pytest.fixture
def one_thread():
    """One intra-op thread for this test: on a shared 2-core runner, 2 OpenMP threads competing with
    other jobs made each step ~20x slower (measured 0.45 s vs 9 s per step at load 6)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_loss_falls_when_fitting_real_eeg(shared_data, one_thread):
    """chb01_03 seizure crop, 23 channels: 8 windows of 2 s, tiny EEGM2, 20 AdamW steps."""
    start = time.monotonic()
    x = _real_windows(shared_data / "seizure" / "chb01_03_Seizure_41s.edf")
    assert x.shape == (8, 23, 400)
    torch.manual_seed(0)
    model = create_model("eegm2_tiny", n_chans=23)
    loss = ReconLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    with torch.no_grad():
        _, first = loss(x, model(x))
    for _ in range(20):
        opt.zero_grad()
        total, _ = loss(x, model(x))
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    with torch.no_grad():
        _, last = loss(x, model(x))
    assert last["total"] < 0.4 * first["total"], (first, last)
    assert last["l1"] < 0.75 * first["l1"], (first, last)
    assert time.monotonic() - start < 60  # CI budget (about 10 s on an idle 2-core machine)
