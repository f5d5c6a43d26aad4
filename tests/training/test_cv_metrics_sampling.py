"""Unit tests: subject-grouped folds, validation splits, metrics, the dynamic multi-task sampler."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eegmamba._checks import UserInputError
from eegmamba.training.cv import n_folds_for, subject_folds, time_split_per_file, validation_split
from eegmamba.training.metrics import auroc, compute_metrics, summarize_folds
from eegmamba.training.sampling import DynamicSampler


def test_folds_are_subject_disjoint_and_cover_everything():
    rng = np.random.default_rng(0)
    subjects = rng.choice([f"S{i:02d}" for i in range(11)], size=500)
    folds = subject_folds(subjects, 5)
    assert len(folds) == 5
    seen = np.concatenate([f.test_idx for f in folds])
    assert sorted(seen.tolist()) == list(range(500))  # each window tested exactly once
    for f in folds:
        assert set(subjects[f.test_idx]).isdisjoint(subjects[f.train_idx])
        assert set(subjects[f.test_idx]) == set(f.test_subjects)
        assert len(f.train_idx) + len(f.test_idx) == 500
    tested = [s for f in folds for s in f.test_subjects]
    assert sorted(tested) == sorted(set(subjects.tolist()))


def test_fewer_subjects_than_folds_uses_one_fold_per_subject():
    subjects = np.array(["a"] * 5 + ["b"] * 3 + ["c"] * 4)
    k, note = n_folds_for(subjects, 5)
    assert k == 3 and "only 3 subjects for 5 folds" in note
    assert n_folds_for(subjects, 2) == (2, None)
    with pytest.raises(UserInputError, match="at least 2 subjects, found 1"):
        n_folds_for(np.array(["a", "a"]), 5)
    with pytest.raises(UserInputError, match="--folds must be an integer >= 2"):
        n_folds_for(subjects, 1)


def test_validation_split_by_subject_file_and_time():
    subjects = np.array(["a"] * 4 + ["b"] * 4 + ["c"] * 4)
    files = np.array([f"{s}.edf" for s in subjects])
    t = np.tile(np.arange(4.0), 3)
    sp = validation_split(np.arange(12), subjects, files, t, window_s=1.0)
    assert sp.how == "subjects" and len(sp.held_out) == 1
    assert set(subjects[sp.val_idx]) == set(sp.held_out)
    assert set(subjects[sp.val_idx]).isdisjoint(subjects[sp.train_idx])
    # one subject, two files → whole files held out
    one = np.array(["a"] * 8)
    two_files = np.array(["r1.edf"] * 4 + ["r2.edf"] * 4)
    sp = validation_split(np.arange(8), one, two_files, np.tile(np.arange(4.0), 2), window_s=1.0)
    assert sp.how == "files" and set(two_files[sp.val_idx]).isdisjoint(two_files[sp.train_idx])
    # one file, overlapping windows (hop 0.5 s, length 2 s) → time cut, overlapping windows dropped
    t = np.arange(20) * 0.5
    sp = validation_split(np.arange(20), np.array(["a"] * 20), np.array(["f"] * 20), t, window_s=2.0)
    assert sp.how == "time"
    cut = t[sp.val_idx].min()
    assert np.all(t[sp.train_idx] + 2.0 <= cut)  # no training window shares samples with validation
    assert len(sp.train_idx) + len(sp.val_idx) + sp.dropped_overlap == 20
    assert sp.dropped_overlap == 3 and "dropped" in sp.describe()


def test_metrics_match_definitions():
    y = np.array([0, 0, 1, 1, 2, 2])
    proba = np.array([[.8, .1, .1], [.4, .5, .1], [.1, .8, .1], [.2, .7, .1], [.1, .1, .8], [.5, .2, .3]])
    m = compute_metrics(y, proba)
    assert m["acc"] == pytest.approx(4 / 6) and m["n"] == 6
    # weighted F1 by hand: class 0 P=1/2 R=1/2; class 1 P=2/3 R=1; class 2 P=1 R=1/2
    f1 = [0.5, 0.8, 2 / 3]
    assert m["f1_weighted"] == pytest.approx(np.mean(f1))
    assert 0.5 < m["auroc"] <= 1.0
    # balanced accuracy = mean recall (1/2, 1, 1/2); kappa = (po - pe) / (1 - pe), pe from the margins
    assert m["balanced_acc"] == pytest.approx(np.mean([0.5, 1.0, 0.5]))
    pe = (2 * 2 + 2 * 3 + 2 * 1) / 36
    assert m["kappa"] == pytest.approx((4 / 6 - pe) / (1 - pe))
    # majority-class predictions on imbalanced data: high accuracy, balanced accuracy 1/2, kappa 0
    imb = compute_metrics(np.array([0] * 9 + [1]), np.tile([0.9, 0.1], (10, 1)))
    assert imb["acc"] == pytest.approx(0.9) and imb["balanced_acc"] == 0.5 and imb["kappa"] == 0.0
    # binary AUROC uses the positive column; a single present class gives NaN, not 0.5
    assert auroc(np.array([0, 1]), np.array([[.9, .1], [.2, .8]])) == 1.0
    assert math.isnan(auroc(np.array([1, 1]), np.array([[.9, .1], [.2, .8]])))
    s = summarize_folds([{"acc": 0.5, "auroc": math.nan, "f1_weighted": 0.4},
                         {"acc": 0.7, "auroc": 0.8, "f1_weighted": 0.6}])
    assert s["acc"]["mean"] == pytest.approx(0.6) and s["acc"]["std"] == pytest.approx(0.1)
    assert s["auroc"] == {"mean": 0.8, "std": 0.0, "n": 1}


def test_dynamic_sampler_probabilities_follow_unseen_counts():
    assert DynamicSampler.probabilities({"big": 300, "small": 100}) == {"big": 0.75, "small": 0.25}
    sampler = DynamicSampler({"big": 300, "small": 20}, batch_size=10, seed=1)
    steps = list(sampler.epoch(0))
    assert len(steps) == sampler.steps_per_epoch() == 32
    for name, n in sampler.sizes.items():  # every window exactly once per epoch
        idx = np.concatenate([s.indices for s in steps if s.task == name])
        assert sorted(idx.tolist()) == list(range(n))
    # the empirical choice frequency at the first step matches 300/320 over many epochs
    first = [next(iter(sampler.epoch(e))).task for e in range(400)]
    assert first.count("big") / 400 == pytest.approx(300 / 320, abs=0.04)
    # same seed and epoch → same batches; another epoch → another order
    again = list(DynamicSampler({"big": 300, "small": 20}, 10, seed=1).epoch(0))
    assert all(a.task == b.task and np.array_equal(a.indices, b.indices) for a, b in zip(steps, again))
    other = list(sampler.epoch(1))
    assert any(a.task != b.task or not np.array_equal(a.indices, b.indices) for a, b in zip(steps, other))
    with pytest.raises(ValueError, match="at least one"):
        DynamicSampler({}, 10)
    with pytest.raises(ValueError, match=">= 1 training window"):
        DynamicSampler({"x": 0}, 10)


def test_time_split_per_file_keeps_every_file_in_training():
    # two files, windows every 0.5 s, 2 s long: the last 20 % of EACH file validates
    files = np.array(["a.edf"] * 10 + ["b.edf"] * 10)
    t = np.concatenate([np.arange(10) * 0.5, np.arange(10) * 0.5])
    sp = time_split_per_file(np.arange(20), files, t, window_s=2.0, val_frac=0.2)
    assert sp.how == "time" and len(sp.held_out) == 2 and "a.edf: t >= 4.00 s" in sp.held_out[0]
    assert set(files[sp.val_idx]) == set(files[sp.train_idx]) == {"a.edf", "b.edf"}
    for f in ("a.edf", "b.edf"):
        cut = t[sp.val_idx][files[sp.val_idx] == f].min()
        assert np.all(t[sp.train_idx][files[sp.train_idx] == f] + 2.0 <= cut)  # no shared samples
    assert len(sp.train_idx) + len(sp.val_idx) + sp.dropped_overlap == 20
    with pytest.raises(UserInputError, match="too few windows"):
        time_split_per_file(np.array([0]), files, t, window_s=2.0)
