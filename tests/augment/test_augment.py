"""Augmentation: each transform's behaviour on batches, the mirror's channel map and label swap,
probabilities honoured with a seed, the frequency shift's Hz, identity when disabled, profile
validation of the section."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from eegmamba._checks import UserInputError
from eegmamba.augment import TRANSFORMS, build_augmentation
from eegmamba.augment.spectral import shift_frequency
from eegmamba.profile_recipe import AugmentationSpec
from eegmamba.profiles import AUGMENTATIONS, load_profile

SHIPPED = load_profile("motor_imagery")
MI = dataclasses.replace(SHIPPED, augmentation=AugmentationSpec())  # each test declares its own
SFREQ = MI.sfreq
LR = [["left_fist", "right_fist"]]


def _profile(**aug):
    return MI.with_overrides({"augmentation": aug})


def _batch(b=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, MI.n_channels, MI.window_samples, generator=g)
    return x, torch.randint(0, 2, (b,), generator=g)


def _changed(x, out):
    return (out != x).flatten(1).any(1)


def test_the_shipped_profile_declares_the_chosen_strong_set():
    """motor_imagery.yaml carries the augmentation of the configuration the issue-17 nested
    selection chose (experiments/issue17_grid.yaml, aug_strong), in the grid's order."""
    aug = build_augmentation(SHIPPED)
    assert aug is not None and aug.mirror is not None and aug.mirror.p == 0.5
    assert [(n, p, m) for n, _, p, m in aug.steps] == [
        ("time_shift", 0.5, 0.25), ("noise", 0.5, 0.1), ("scale", 0.5, 0.2),
        ("channel_dropout", 0.3, 0.1), ("time_mask", 0.3, 0.3), ("freq_shift", 0.3, 1.0),
        ("ft_surrogate", 0.2, 0.5)]


def test_disabled_is_none_and_zero_probability_is_identity():
    assert build_augmentation(MI) is None
    aug = build_augmentation(_profile(noise={"p": 0.0, "magnitude": 0.5}))
    assert aug is None
    x, y = _batch()
    aug = build_augmentation(_profile(noise={"p": 1.0, "magnitude": 0.5}))
    aug.steps = [(n, f, 0.0, m) for n, f, _, m in aug.steps]  # every p to 0
    out, yo = aug(x, y, torch.Generator().manual_seed(1))
    assert torch.equal(out, x) and torch.equal(yo, y)


@pytest.mark.parametrize("name, mag", [("time_shift", 0.2), ("noise", 0.1), ("scale", 0.2),
                                       ("channel_dropout", 0.2), ("time_mask", 0.5),
                                       ("freq_shift", 2.0), ("ft_surrogate", 0.5)])
def test_each_transform_keeps_shape_and_is_seeded(name, mag):
    x, y = _batch()
    aug = build_augmentation(_profile(**{name: {"p": 1.0, "magnitude": mag}}))
    a, ya = aug(x.clone(), y, torch.Generator().manual_seed(3))
    b, _ = aug(x.clone(), y, torch.Generator().manual_seed(3))
    c, _ = aug(x.clone(), y, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and a.dtype == x.dtype and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(ya, y)  # only the mirror changes labels
    assert _changed(x, a).float().mean() > 0.9


def test_probability_is_honoured():
    x, y = _batch(b=2000)
    for p in (0.25, 0.7):
        aug = build_augmentation(_profile(scale={"p": p, "magnitude": 0.5}))
        out, _ = aug(x, y, torch.Generator().manual_seed(0))
        frac = _changed(x, out).float().mean().item()
        assert abs(frac - p) < 4 * np.sqrt(p * (1 - p) / 2000), (p, frac)


def test_time_shift_moves_the_signal_and_zero_fills():
    x = torch.zeros(200, 1, 600)
    x[:, :, 300] = 1.0  # an impulse in the middle
    out = TRANSFORMS["time_shift"](x, torch.ones(200, dtype=torch.bool), 0.2, SFREQ,
                                   torch.Generator().manual_seed(0))
    pos = out[:, 0].argmax(1) - 300
    assert pos.abs().max() <= 40 and pos.abs().max() >= 30 and len(pos.unique()) > 20
    assert torch.allclose(out.sum(2), torch.ones(200, 1))  # moved, not smeared
    ramp = torch.arange(600.0).repeat(4, 1, 1)
    sh = TRANSFORMS["time_shift"](ramp, torch.ones(4, dtype=torch.bool), 0.2, SFREQ,
                                  torch.Generator().manual_seed(1))
    assert ((sh == 0).sum(2) >= 1).all() or (sh == ramp).all()  # vacated samples are zero


def test_channel_dropout_zeroes_whole_channels_and_time_mask_a_smooth_segment():
    x = torch.ones(500, 22, 600)
    sel = torch.ones(500, dtype=torch.bool)
    out = TRANSFORMS["channel_dropout"](x, sel, 0.3, SFREQ, torch.Generator().manual_seed(0))
    zero = (out == 0).all(2)
    assert ((out == 0) | (out == 1)).all() and abs(zero.float().mean().item() - 0.3) < 0.02
    m = TRANSFORMS["time_mask"](x, sel, 0.5, SFREQ, torch.Generator().manual_seed(0))
    masked = (m[:, 0] < 0.5).sum(1)
    assert (masked - 100).abs().max() <= 1  # 0.5 s at 200 Hz
    assert (m[:, 0].diff(dim=1).abs().max(1).values < 0.3).all()  # edges are smooth, no step


@pytest.mark.parametrize("shift", [2.0, -3.0, 1.5])
def test_frequency_shift_moves_a_sine_peak_by_the_declared_hz(shift):
    t = torch.arange(600) / SFREQ
    x = torch.sin(2 * np.pi * 10.0 * t).repeat(2, 3, 1)
    out = shift_frequency(x, torch.full((2,), shift), SFREQ)
    f = np.fft.rfftfreq(8 * 600, 1 / SFREQ)
    peak = f[np.abs(np.fft.rfft(out[0, 0].numpy() * np.hanning(600), n=8 * 600)).argmax()]
    assert abs(peak - (10.0 + shift)) < 0.1, peak
    assert out.shape == x.shape


def test_ft_surrogate_keeps_the_power_spectrum():
    x, y = _batch(b=8)
    out = TRANSFORMS["ft_surrogate"](x, torch.ones(8, dtype=torch.bool), 1.0, SFREQ,
                                     torch.Generator().manual_seed(0))
    p_in, p_out = torch.fft.rfft(x).abs(), torch.fft.rfft(out).abs()
    assert torch.allclose(p_in, p_out, atol=1e-3) and not torch.allclose(x, out, atol=0.1)


def test_mirror_maps_c3_to_c4_and_swaps_left_right():
    names = list(MI.channels.names)
    x, y = _batch(b=400)
    aug = build_augmentation(_profile(mirror={"p": 0.5, "swap": LR}))
    out, yo = aug(x, y, torch.Generator().manual_seed(0))
    flipped = yo != y
    assert 0.4 < flipped.float().mean() < 0.6
    c3, c4, cz, fc1, fc2 = (names.index(n) for n in ("C3", "C4", "Cz", "FC1", "FC2"))
    assert torch.equal(out[flipped, c3], x[flipped, c4]) and torch.equal(out[flipped, c4], x[flipped, c3])
    assert torch.equal(out[flipped, fc1], x[flipped, fc2]) and torch.equal(out[flipped, cz], x[flipped, cz])
    assert torch.equal(out[~flipped], x[~flipped])
    assert torch.equal(yo[flipped], 1 - y[flipped])  # left_fist (0) <-> right_fist (1)


def test_mirror_keeps_unpaired_classes_and_rejects_asymmetric_montage():
    rest = load_profile("motor_imagery_rest").with_overrides(
        {"augmentation": {"mirror": {"p": 1.0, "swap": LR}}})
    aug = build_augmentation(rest)
    x, _ = _batch(b=6)
    y = torch.tensor([0, 1, 2, 0, 1, 2])  # rest, left, right
    _, yo = aug(x, y, torch.Generator().manual_seed(0))
    assert yo.tolist() == [0, 2, 1, 0, 2, 1]
    lopsided = MI.with_overrides({"channels": {"names": ["C3", "C4", "C5"]},
                                  "augmentation": {"mirror": {"p": 0.5, "swap": LR}}})
    with pytest.raises(UserInputError, match="C5 \\(mirror C6\\)"):
        build_augmentation(lopsided)


@pytest.mark.parametrize("aug, words", [
    ({"noise": {"p": 1.5, "magnitude": 0.1}}, "augmentation.noise.p must be <= 1"),
    ({"noise": {"p": 0.5}}, "augmentation.noise.magnitude is required"),
    ({"blur": {"p": 0.5, "magnitude": 1}}, "augmentation.blur is not a known field"),
    ({"scale": {"p": 0.5, "magnitude": 1.2}}, "augmentation.scale.magnitude must be < 1"),
    ({"mirror": {"p": 0.5}}, "augmentation.mirror.swap is required"),
    ({"mirror": {"p": 0.5, "swap": [["left_fist", "feet"]]}}, "augmentation.mirror.swap[0] must be one of"),
])
def test_bad_section_names_the_field(aug, words):
    with pytest.raises(UserInputError) as err:
        _profile(**aug)
    assert words in str(err.value)


def test_generator_on_another_device_than_the_batch_is_fine_and_order_is_declared():
    assert tuple(TRANSFORMS) == AUGMENTATIONS
    aug = build_augmentation(_profile(noise={"p": 1.0, "magnitude": 0.1},
                                      mirror={"p": 1.0, "swap": LR}))
    assert repr(aug).startswith("Augmentation(mirror(p=1), noise")
    x, y = _batch(b=4)
    out, yo = aug(x.double(), y, torch.Generator().manual_seed(0))
    assert out.dtype == torch.float64 and torch.equal(yo, 1 - y)
