"""Peers with alignment (issue 17): CSP+LDA with Euclidean alignment, TS+LR and MDM with Riemannian
re-centering, per person (``groups``), on people whose heads mix the same sources differently."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from eegmamba.baselines import CSPLDA
from eegmamba.baselines.riemann import MDM, TSLR, recenter
from tests.baselines.test_classical import SFREQ, _band_set


def _people(n_people=4, seed=0):
    """Each person: the same kind of class-dependent sources seen through their own electrode gains
    (0.2x to 5x: impedance, cap fit, amplifier) and a little mixing: ``X (n, 6, 400)``, ``y``,
    ``person``. (Alignment undoes gains and mixing only up to a rotation, so the mixing is small.)"""
    rng = np.random.default_rng(seed)
    X, y, who = [], [], []
    for p in range(n_people):
        src, lab = _band_set(n=90, n_classes=2, seed=seed * 10 + p)
        mix = np.exp(rng.uniform(np.log(0.2), np.log(5.0), (6, 1))) * (
            np.eye(6) + 0.1 * rng.standard_normal((6, 6)))
        X.append(np.einsum("cd,ndl->ncl", mix, src))
        y.append(lab)
        who += [p] * len(lab)
    return np.concatenate(X).astype(np.float32), np.concatenate(y), np.asarray(who)


@pytest.mark.parametrize("make", [lambda a: CSPLDA(sfreq=SFREQ, n_components=4, align=a),
                                  lambda a: TSLR(sfreq=SFREQ, recenter=a),
                                  lambda a: MDM(sfreq=SFREQ, recenter=a)])
def test_alignment_helps_a_new_person(make):
    accs = {True: [], False: []}
    for seed in range(3):
        X, y, who = _people(seed=seed)
        tr, te = who < 3, who == 3
        for aligned in (True, False):
            clf = clone(make(aligned)).fit(X[tr], y[tr], groups=who[tr])
            proba = clf.predict_proba(X[te], groups=who[te])
            assert proba.shape == (te.sum(), 2)
            accs[aligned].append(float((clf.predict(X[te], groups=who[te]) == y[te]).mean()))
    assert np.mean(accs[True]) > 0.8, accs
    assert np.mean(accs[True]) > np.mean(accs[False]) + 0.1, accs


def test_recenter_puts_each_group_mean_at_identity():
    from pyriemann.geometry.mean import mean_riemann

    X, _, who = _people(n_people=2)
    from pyriemann.estimation import Covariances

    covs = recenter(Covariances("oas").transform(X.astype(np.float64)), who)
    for g in (0, 1):
        assert np.allclose(mean_riemann(covs[who == g]), np.eye(6), atol=1e-6)
    with pytest.raises(ValueError, match="groups must have shape"):
        TSLR(sfreq=SFREQ, recenter=True).fit(X, _people(n_people=2)[1], groups=who[:5])
