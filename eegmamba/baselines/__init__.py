"""Baselines EEGMamba is judged against: EEG Conformer (our implementation from the paper) and the
classical CSP+LDA / band-power+LR models the training reports run on the same folds."""

from eegmamba.baselines.classical import BANDS, BandPowerLR, CSPLDA, make_baseline
from eegmamba.baselines.conformer import ConformerConfig, EEGConformer, create_conformer

__all__ = ["BANDS", "BandPowerLR", "CSPLDA", "ConformerConfig", "EEGConformer", "create_conformer",
           "make_baseline"]
