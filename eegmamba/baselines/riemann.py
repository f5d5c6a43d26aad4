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
                 estimator: str = "oas") -> None:
        self.sfreq = sfreq
        self.band = band
        self.estimator = estimator

    def _validate_params_for(self, X: np.ndarray) -> None:
        super()._validate_params_for(X)
        if X.shape[1] < 2:
            raise ValueError(f"{self.name} needs at least 2 channels, got {X.shape[1]}")
        if self.band is not None and not 0 < self.band[0] < self.band[1] < self.sfreq / 2:
            raise ValueError(f"band must satisfy 0 < low < high < sfreq/2 = {self.sfreq / 2} Hz, "
                             f"got {self.band}")

    def _transform_input(self, X: np.ndarray) -> np.ndarray:
        if self.band is None:
            return X
        sos = butter(4, self.band, btype="bandpass", fs=self.sfreq, output="sos")
        return sosfiltfilt(sos, X, axis=-1)


class TSLR(_CovarianceClassifier):
    """Tangent space + logistic regression (see module docstring). ``C``: inverse L2 strength."""

    name = "TS+LR"

    def __init__(self, sfreq: float = 200.0, band: tuple[float, float] | None = (8.0, 30.0),
                 estimator: str = "oas", C: float = 1.0) -> None:
        super().__init__(sfreq, band, estimator)
        self.C = C

    def _make_pipeline(self) -> Pipeline:
        from pyriemann.estimation import Covariances
        from pyriemann.tangentspace import TangentSpace

        return make_pipeline(Covariances(estimator=self.estimator), TangentSpace(metric="riemann"),
                             LogisticRegression(C=self.C, max_iter=2000))


class MDM(_CovarianceClassifier):
    """Minimum distance to the class Riemannian means (see module docstring)."""

    name = "MDM"

    def _make_pipeline(self) -> Pipeline:
        from pyriemann.classification import MDM as _MDM
        from pyriemann.estimation import Covariances

        return make_pipeline(Covariances(estimator=self.estimator), _MDM(metric="riemann"))
