"""Subject calibration (``eegmamba.training.calibrate.finetune``) on real EEGMMIDB windows.

The windows are real (S001R04, its cues as trials); to give the tiny model something it can learn
in a few epochs, a 10 Hz rhythm is added to C3 in the left-fist windows (documented test signal).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from eegmamba import TaskSpec, create_model
from eegmamba._checks import UserInputError
from eegmamba.profiles import Profile, load_profile
from eegmamba.training.calibrate import (CalibConfig, CalibResult, finetune, split_trials,
                                         window_trials)
from eegmamba.training.frozen_prefix import PrefixCache, trainable

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def profile() -> Profile:
    d = load_profile("motor_imagery").to_dict()
    d["window"] = {"length_s": 2.0, "hop_s": 0.5, "train_hop_s": 0.5}  # several windows per cue
    return Profile.from_dict(d, source="test")


@pytest.fixture(scope="module")
def windows(profile, shared_data):
    from eegmamba.data.dataset import build_windows

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ws = build_windows([shared_data / "motor_imagery" / "S001R04.edf"], profile)
    groups = window_trials(ws.files, ws.t_start, profile)
    X = ws.X.copy()
    t = np.arange(X.shape[2]) / profile.sfreq
    c3 = profile.channels.names.index("C3")
    X[:, c3] += np.where(ws.y == 1, 1.5, 0.0)[:, None] * np.sin(2 * np.pi * 10 * t)
    return X, ws.y, groups


def _model(profile, variant="eegmamba_tiny", seed=0):
    torch.manual_seed(seed)
    spec = TaskSpec(profile.task, profile.n_channels, profile.window_samples, len(profile.classes),
                    profile.sfreq, profile.channels.names, profile.classes)
    return create_model(variant, tasks=[spec]).eval()


def _state(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def test_window_trials_are_the_cues(profile, windows):
    X, y, groups = windows
    assert not any("@?" in g for g in groups)  # every labelled window starts inside a cue
    for g in set(groups):
        assert len(set(y[groups == g])) == 1  # one class per trial
    # S001R04 has 30 cues (T0 alternating with T1/T2, ~4.1 s each); 2-s windows fit each scored
    # one: all 30 with rest as a class, the 15 T1/T2 cues where the profile ignores T0
    n_cues = 30 if "rest" in profile.classes else 15
    assert n_cues - 5 <= len(set(groups)) <= n_cues


def test_split_trials_holds_out_the_last_trials_of_each_class():
    groups = np.array([0, 0, 1, 1, 2, 3, 3, 4, 5, 5, 6])
    y = np.array([0, 0, 1, 1, 0, 1, 1, 0, 1, 1, 2])
    keep, held = split_trials(groups, y, 0.34)
    # class 0 trials 0, 2, 4 -> last one (4); class 1 trials 1, 3, 5 -> 5; class 2: one trial, kept
    assert set(groups[held]) == {4, 5} and set(groups[keep]) == {0, 1, 2, 3, 6}
    assert not split_trials(groups, y, 0.0)[1].any()


@pytest.mark.parametrize("layers", ["head", "last"])
def test_frozen_parts_stay_and_the_given_model_is_untouched(profile, windows, layers):
    X, y, groups = windows
    model = _model(profile)
    before = _state(model)
    res = finetune(model, X, y, groups, config=CalibConfig(layers=layers, epochs=2, lr=1e-3))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    after = res.model.state_dict()
    changed = {k for k in after if not torch.equal(before[k], after[k])}
    trained = {"head": ("classifier.",), "last": ("classifier.", "blocks.1.", "moes.1.")}[layers]
    assert changed and all(k.startswith(trained) for k in changed), changed
    assert res.info["cached"] and res.info["layers"] == layers
    assert res.info["n_trainable"] < sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("layers,variant", [("head", "eegmamba_tiny"), ("last", "eegmamba_tiny"),
                                            ("head", "eegmamba_single"),
                                            ("last", "eegmamba_single")])
def test_cached_path_gives_the_models_own_logits(profile, windows, layers, variant):
    X = windows[0][:3]
    model = _model(profile, variant)
    _, cut = trainable(model, layers)
    cache = PrefixCache(model, cut, None)
    z = cache.capture(X, torch.device("cpu"), 8)
    with torch.no_grad():
        ref = model(torch.from_numpy(X))
        with cache.feeding(X.shape) as run:
            got = run(z)
        again = model(torch.from_numpy(X))  # the stubs are gone again
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again, ref)


def test_calibration_learns_and_beats_the_given_model_on_held_out_trials(profile, windows):
    X, y, groups = windows
    model = _model(profile)
    epochs = []
    res = finetune(model, X, y, groups, config=CalibConfig(layers="all", epochs=12, lr=3e-3),
                   on_epoch=epochs.append)
    assert len(epochs) == res.info["epochs_run"] >= 1 and "val_loss" in epochs[0]
    assert res.before["n_trials"] == len(res.holdout_trials) >= 3
    held = np.isin(groups, res.holdout_trials)
    assert res.before["n"] == held.sum() and not set(res.holdout_trials) & set(res.train_trials)
    assert not set(res.es_trials) & set(res.train_trials)
    assert res.after["loss"] < res.before["loss"]
    assert res.after["balanced_acc"] > res.before["balanced_acc"] and res.improved
    assert "->" in res.summary()


def test_improved_rule():
    b = {"acc": 0.5, "balanced_acc": 0.5, "loss": 1.0, "n": 10, "n_trials": 4}
    same_better_loss = {**b, "loss": 0.9}
    worse = {**b, "balanced_acc": 0.4, "loss": 0.1}
    assert CalibResult(None, b, same_better_loss).improved
    assert not CalibResult(None, b, worse).improved
    assert not CalibResult(None, None, None).improved


def test_should_stop_keeps_the_best_weights_so_far(profile, windows):
    X, y, groups = windows
    res = finetune(_model(profile), X, y, groups, config=CalibConfig(layers="head", epochs=50),
                   should_stop=lambda: True)
    assert res.info["interrupted"] and res.info["epochs_run"] == 1


def test_bad_inputs_are_user_errors(profile, windows):
    X, y, groups = windows
    model = _model(profile)
    with pytest.raises(UserInputError, match="at least two classes"):
        finetune(model, X, np.zeros_like(y), groups)
    with pytest.raises(UserInputError, match="class indices"):
        finetune(model, X, y + 10, groups)
    with pytest.raises(UserInputError, match="layers must be one of"):
        CalibConfig(layers="middle")
    with pytest.raises(UserInputError, match="one trial id per window"):
        finetune(model, X, y, groups[:3])


def test_eegm2_classifier_head_calibrates_and_last_is_refused(windows, profile):
    from eegmamba.registry import create_model as make

    X, y, groups = windows
    torch.manual_seed(0)
    model = make("eegm2_classifier", n_chans=X.shape[1], n_classes=len(profile.classes)).eval()
    res = finetune(model, X[:40], y[:40], groups[:40], config=CalibConfig(layers="head", epochs=1))
    assert res.info["cached"]
    with pytest.raises(UserInputError, match="needs an EEGMamba model"):
        finetune(model, X[:40], y[:40], groups[:40], config=CalibConfig(layers="last", epochs=1))
