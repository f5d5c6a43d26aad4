"""Classical baselines, run by the training reports on the same folds as EEGMamba.

* :class:`CSPLDA` — motor imagery: band-pass (8-30 Hz, the mu and beta rhythms) → common spatial
  patterns (``mne.decoding.CSP``, log-variance features; more than two classes use MNE's
  mutual-information component ordering) → linear discriminant analysis with shrinkage.
* :class:`BandPowerLR` — sleep staging and seizure detection: log band powers (delta, theta, alpha,
  sigma, beta, gamma; Welch periodogram) per channel → ``StandardScaler`` → logistic regression.

Both take windows as the training pipeline cuts them, ``X : ndarray, shape (n_windows, n_chans,
n_times)``, sampled at ``sfreq`` (200 Hz after preprocessing), and labels ``y : (n_windows,)`` (ints
or strings). They are scikit-learn estimators (``fit`` / ``predict_proba`` / ``predict`` /
``score``), so ``sklearn.base.clone`` gives a fresh copy per fold.

Alignment (issue 17, nothing learned from labels): ``fit`` and ``predict_proba`` take an optional
``groups (n_windows,)`` (the person, or recording, of each window; default: all one group). With
``CSPLDA(align=True)`` each group's band-passed windows are Euclidean-aligned (He & Wu 2020,
:func:`eegmamba.alignment.align_windows`); the covariance peers (:mod:`eegmamba.baselines.riemann`)
re-centre each group's covariances at the identity (``recenter=True``, Zanini et al. 2018).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.signal import butter, sosfiltfilt, welch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from eegmamba._checks import check_option, check_positive
from eegmamba.alignment import align_windows

# Band edges in Hz (AASM / sleep-staging convention; gamma capped at 50 Hz, the paper's low-pass).
BANDS: dict[str, tuple[float, float]] = {
    "delta": (0.5, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 12.0),
    "sigma": (12.0, 15.0),
    "beta": (15.0, 30.0),
    "gamma": (30.0, 50.0),
}

TASK_KINDS = ("motor_imagery", "sleep", "seizure")
_ALIASES = {"mi": "motor_imagery", "motor-imagery": "motor_imagery", "sleep_staging": "sleep",
            "seizure_detection": "seizure"}


def _check_X(X: Any, name: str = "X") -> np.ndarray:
    """Return ``X`` as a float64 array of shape (n_windows, n_chans, n_times), or raise."""
    if not isinstance(X, np.ndarray):
        raise TypeError(f"{name} must be a numpy array (n_windows, n_chans, n_times), "
                        f"got {type(X).__name__}")
    if X.ndim != 3:
        raise ValueError(f"{name} must have shape (n_windows, n_chans, n_times); got {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0 or X.shape[2] == 0:
        raise ValueError(f"{name} has an empty axis: shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {X.dtype}")
    X = X.astype(np.float64, copy=False)
    if not np.isfinite(X).all():
        n_bad = int((~np.isfinite(X).all(axis=(1, 2))).sum())
        raise ValueError(f"{name} contains NaN or inf in {n_bad} of {X.shape[0]} windows; "
                         "drop or repair those windows first")
    return X


def _check_groups(groups: Any, n: int) -> np.ndarray | None:
    if groups is None:
        return None
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups must have shape ({n},) to match X's {n} windows; got {groups.shape}")
    return groups


def _check_y(y: Any, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"y must have shape ({n},) to match X's {n} windows; got {y.shape}")
    if np.unique(y).size < 2:
        raise ValueError(f"y must contain at least 2 classes to fit a classifier; got {np.unique(y)}")
    return y


class _WindowClassifier(ClassifierMixin, BaseEstimator):
    """Shared fit/predict plumbing: shape checks, then a scikit-learn pipeline on features."""

    name = "baseline"

    def _make_pipeline(self) -> Pipeline:  # pragma: no cover - abstract
        raise NotImplementedError

    def _transform_input(self, X: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        return X

    def _check_fitted_X(self, X: Any) -> np.ndarray:
        if not hasattr(self, "pipeline_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted yet; call fit(X, y) first")
        X = _check_X(X)
        if X.shape[1:] != self.input_shape_:
            raise ValueError(
                f"{type(self).__name__} was fitted on windows of shape (n_chans, n_times) = "
                f"{self.input_shape_}, got {X.shape[1:]}"
            )
        return X

    def fit(self, X: np.ndarray, y: Any, groups: Any = None) -> "_WindowClassifier":
        """Fit on ``X : (n_windows, n_chans, n_times)`` and labels ``y : (n_windows,)``;
        ``groups (n_windows,)``: person per window, used only by the alignment options."""
        X = _check_X(X)
        y = _check_y(y, X.shape[0])
        self._validate_params_for(X)
        self.input_shape_ = X.shape[1:]
        self.pipeline_ = self._make_pipeline()
        self.pipeline_.fit(self._transform_input(X, _check_groups(groups, X.shape[0])), y)
        self.classes_ = self.pipeline_.classes_
        return self

    def _validate_params_for(self, X: np.ndarray) -> None:
        check_positive(self.sfreq, "sfreq")

    def predict_proba(self, X: np.ndarray, groups: Any = None) -> np.ndarray:
        """Class probabilities ``(n_windows, n_classes)``, columns in ``classes_`` order, rows sum to 1;
        ``groups``: person per window (alignment options; each group aligned with its own windows)."""
        X = self._check_fitted_X(X)
        return self.pipeline_.predict_proba(self._transform_input(X, _check_groups(groups, X.shape[0])))

    def predict(self, X: np.ndarray, groups: Any = None) -> np.ndarray:
        """Most probable class per window, ``(n_windows,)``, values from ``classes_``."""
        proba = self.predict_proba(X, groups)
        return self.classes_[np.argmax(proba, axis=1)]


class CSPLDA(_WindowClassifier):
    """Band-pass → CSP (log-variance) → shrinkage LDA, for motor imagery.

    Parameters
    ----------
    sfreq : float
        Sampling rate of the windows in Hz.
    band : (float, float) or None
        Pass band in Hz applied per window (4th-order Butterworth, zero-phase; each window filtered on
        its own, so nothing leaks between windows). ``None`` uses the windows as given.
    n_components : int
        CSP components kept (capped at the channel count).
    reg : str or float or None
        Covariance regularization passed to ``mne.decoding.CSP`` (Ledoit-Wolf by default: PhysioNet
        MI has 64 channels and only tens of trials per class).
    align : bool
        Euclidean-align each group's band-passed windows before CSP (module docstring).
    """

    name = "CSP+LDA"

    def __init__(self, sfreq: float = 200.0, band: tuple[float, float] | None = (8.0, 30.0),
                 n_components: int = 6, reg: str | float | None = "ledoit_wolf",
                 align: bool = False) -> None:
        self.sfreq = sfreq
        self.band = band
        self.n_components = n_components
        self.reg = reg
        self.align = align

    def _validate_params_for(self, X: np.ndarray) -> None:
        super()._validate_params_for(X)
        if X.shape[1] < 2:
            raise ValueError(f"CSP needs at least 2 channels, got {X.shape[1]}; use BandPowerLR")
        if isinstance(self.n_components, bool) or not isinstance(self.n_components, int) \
                or self.n_components < 1:
            raise ValueError(f"n_components must be a positive int, got {self.n_components!r}")
        if self.band is not None:
            lo, hi = self.band
            if not 0 < lo < hi < self.sfreq / 2:
                raise ValueError(f"band must satisfy 0 < low < high < sfreq/2 = {self.sfreq / 2} Hz, "
                                 f"got {self.band}")

    def fit(self, X: np.ndarray, y: Any, groups: Any = None) -> "CSPLDA":
        """Fit on ``X : (n_windows, n_chans, n_times)`` and labels ``y : (n_windows,)``."""
        import mne

        with mne.utils.use_log_level("WARNING"):  # CSP logs its rank estimate per class at INFO
            return super().fit(X, y, groups)

    def _make_pipeline(self) -> Pipeline:
        from mne.decoding import CSP  # imported here: mne is slow to import

        n_comp = min(self.n_components, self.input_shape_[0])
        csp = CSP(n_components=n_comp, reg=self.reg, log=True, norm_trace=False)
        lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
        return make_pipeline(csp, lda)

    def _transform_input(self, X: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        if self.band is not None:
            sos = butter(4, self.band, btype="bandpass", fs=self.sfreq, output="sos")
            X = sosfiltfilt(sos, X, axis=-1)
        return align_windows(X, groups) if self.align else X


class BandPowerLR(_WindowClassifier):
    """Log band power per channel (Welch) → StandardScaler → logistic regression.

    Parameters
    ----------
    sfreq : float
        Sampling rate of the windows in Hz.
    bands : dict of str to (float, float), optional
        Bands in Hz; default :data:`BANDS`. Bands reaching past Nyquist are an error.
    welch_s : float
        Welch segment length in seconds (capped at the window length; 2 s gives 0.5 Hz bins).
    C : float
        Inverse regularization strength of the logistic regression.
    class_weight : None or "balanced"
        Passed to ``LogisticRegression`` (sleep data is mostly N2; seizures are rare).

    Features are ``log10(mean PSD in band + 1e-12)`` in µV²/Hz when ``X`` is in µV, shape
    ``(n_windows, n_chans * n_bands)`` (channel-major).
    """

    name = "band power+LR"

    def __init__(self, sfreq: float = 200.0, bands: dict[str, tuple[float, float]] | None = None,
                 welch_s: float = 2.0, C: float = 1.0, class_weight: str | None = None) -> None:
        self.sfreq = sfreq
        self.bands = bands
        self.welch_s = welch_s
        self.C = C
        self.class_weight = class_weight

    def _bands(self) -> dict[str, tuple[float, float]]:
        return dict(BANDS if self.bands is None else self.bands)

    def _validate_params_for(self, X: np.ndarray) -> None:
        super()._validate_params_for(X)
        check_positive(self.welch_s, "welch_s")
        check_positive(self.C, "C")
        check_option(self.class_weight, (None, "balanced"), "class_weight")
        nyq = self.sfreq / 2
        for name, (lo, hi) in self._bands().items():
            if not 0 <= lo < hi <= nyq:
                raise ValueError(f"band {name!r} = ({lo}, {hi}) Hz must satisfy 0 <= low < high <= "
                                 f"Nyquist ({nyq} Hz at sfreq={self.sfreq})")

    def _make_pipeline(self) -> Pipeline:
        lr = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=2000)
        return make_pipeline(StandardScaler(), lr)

    def band_powers(self, X: np.ndarray) -> np.ndarray:
        """Log10 band powers, ``(n_windows, n_chans * n_bands)``; see the class docstring."""
        X = _check_X(X)
        nperseg = min(X.shape[-1], max(8, int(round(self.welch_s * self.sfreq))))
        freqs, psd = welch(X, fs=self.sfreq, nperseg=nperseg, axis=-1)  # (N, C, F)
        feats = []
        for name, (lo, hi) in self._bands().items():
            mask = (freqs >= lo) & (freqs < hi)
            if not mask.any():
                raise ValueError(
                    f"band {name!r} ({lo}-{hi} Hz) holds no frequency bin at {freqs[1]:.3g} Hz "
                    f"resolution; use longer windows or a larger welch_s"
                )
            feats.append(np.log10(psd[..., mask].mean(axis=-1) + 1e-12))  # (N, C)
        return np.stack(feats, axis=-1).reshape(X.shape[0], -1)

    def _transform_input(self, X: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        return self.band_powers(X)


def make_baseline(task_kind: str, sfreq: float = 200.0, **kwargs: Any) -> _WindowClassifier:
    """The classical baseline for a task kind, unfitted.

    ``task_kind`` is ``"motor_imagery"`` (→ :class:`CSPLDA`), ``"sleep"`` or ``"seizure"``
    (→ :class:`BandPowerLR`). ``kwargs`` go to the estimator.
    """
    kind = _ALIASES.get(task_kind, task_kind)
    check_option(kind, TASK_KINDS, "task_kind")
    if kind == "motor_imagery":
        return CSPLDA(sfreq=sfreq, **kwargs)
    return BandPowerLR(sfreq=sfreq, **kwargs)
