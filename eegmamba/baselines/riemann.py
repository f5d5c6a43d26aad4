"""Riemannian motor-imagery peers (pyriemann), as MOABB runs them on this dataset.

* :class:`TSLR` — band-pass → spatial covariance (OAS shrinkage) → tangent space at the Riemannian
  mean of the training covariances → logistic regression (MOABB's "TS+LR").
* :class:`MDM` — band-pass → spatial covariance (OAS) → minimum distance to the Riemannian mean of
  each class (Barachant et al. 2012; MOABB's "MDM"); probabilities are pyriemann's softmax of the
  negative squared distances.

Why pyriemann: it is the reference implementation the BCI field (and MOABB's published figures)
uses; re-deriving affine-invariant means and log maps here would only add risk.

Inputs are windows as the pipeline cuts them, ``X : ndarray, shape (n_windows, n_chans, n_times)``
in µV (``normalization: none``: a covariance needs the channels' relative scale, which per-window
z-scoring removes), sampled at ``sfreq``. The band-pass is the one of :class:`CSPLDA` (8-30 Hz, mu
and beta; MOABB uses 8-32 Hz), applied per window with zero phase.

``recenter=True``: Riemannian re-centering (Zanini et al. 2018), the covariance form of Euclidean
alignment: each group's covariances (``groups`` of ``fit`` / ``predict_proba``, a person per window;
default one group) become ``M^{-1/2} C M^{-1/2}`` with ``M`` their Riemannian mean (pyriemann's
``mean_riemann``), so every person's mean sits at the identity. Unsupervised: at test time it uses
the test person's own windows, no labels.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfiltfilt
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline

from eegmamba.baselines.classical import _WindowClassifier


class _CovarianceClassifier(_WindowClassifier):
    """Shared band-pass + parameter checks of the covariance-based peers."""

    def __init__(self, sfreq: float = 200.0, band: tuple[float, float] | None = (8.0, 30.0),
                 estimator: str = "oas", recenter: bool = False) -> None:
        self.sfreq = sfreq
        self.band = band
        self.estimator = estimator
        self.recenter = recenter

    def _validate_params_for(self, X: np.ndarray) -> None:
        super()._validate_params_for(X)
        if X.shape[1] < 2:
            raise ValueError(f"{self.name} needs at least 2 channels, got {X.shape[1]}")
        if self.band is not None and not 0 < self.band[0] < self.band[1] < self.sfreq / 2:
            raise ValueError(f"band must satisfy 0 < low < high < sfreq/2 = {self.sfreq / 2} Hz, "
                             f"got {self.band}")

    def _transform_input(self, X: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """Band-passed windows, or (``recenter``) their re-centred covariances ``(N, C, C)``."""
        if self.band is not None:
            sos = butter(4, self.band, btype="bandpass", fs=self.sfreq, output="sos")
            X = sosfiltfilt(sos, X, axis=-1)
        if not self.recenter:
            return X
        return recenter(self._covariances().transform(X), groups)

    def _covariances(self):
        from pyriemann.estimation import Covariances

        return Covariances(estimator=self.estimator)

    def _head(self, *steps) -> Pipeline:
        """The pipeline after the covariances (which ``recenter`` computes itself)."""
        return make_pipeline(*(() if self.recenter else (self._covariances(),)), *steps)


def recenter(covs: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Riemannian re-centering: ``covs (N, C, C)`` → each group's ``M^{-1/2} C M^{-1/2}`` with ``M``
    the group's Riemannian mean (``groups (N,)``, None = one group)."""
    from pyriemann.geometry.base import invsqrtm
    from pyriemann.geometry.mean import mean_riemann

    groups = np.zeros(len(covs), dtype=int) if groups is None else np.asarray(groups)
    out = np.empty_like(covs)
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        w = invsqrtm(mean_riemann(covs[idx]))
        out[idx] = w @ covs[idx] @ w
    return out


class TSLR(_CovarianceClassifier):
    """Tangent space + logistic regression (see module docstring). ``C``: inverse L2 strength."""

    name = "TS+LR"

    def __init__(self, sfreq: float = 200.0, band: tuple[float, float] | None = (8.0, 30.0),
                 estimator: str = "oas", C: float = 1.0, recenter: bool = False) -> None:
        super().__init__(sfreq, band, estimator, recenter)
        self.C = C

    def _make_pipeline(self) -> Pipeline:
        from pyriemann.tangentspace import TangentSpace

        return self._head(TangentSpace(metric="riemann"), LogisticRegression(C=self.C, max_iter=2000))


class MDM(_CovarianceClassifier):
    """Minimum distance to the class Riemannian means (see module docstring)."""

    name = "MDM"

    def _make_pipeline(self) -> Pipeline:
        from pyriemann.classification import MDM as _MDM

        return self._head(_MDM(metric="riemann"))
