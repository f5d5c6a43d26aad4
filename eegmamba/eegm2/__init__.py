"""EEGM2 (Hong et al. 2025): Mamba-2 (SSD) reconstruction pretraining and its encoder classifier.

Importing this package registers the variants ``eegm2``, ``eegm2_light``, ``eegm2_tiny`` and
``eegm2_classifier``.
"""

from eegmamba.eegm2.classifier import EEGM2Classifier, pool_time
from eegmamba.eegm2.config import EEGM2ClassifierConfig, EEGM2Config
from eegmamba.eegm2.loss import ReconLoss, ReconLossConfig, spectral_term
from eegmamba.eegm2.mamba2 import Mamba2, RMSNormGated
from eegmamba.eegm2.model import EEGM2, EEGM2Encoder, count_parameters
from eegmamba.eegm2.ssd import mamba_chunk_scan, mamba_chunk_scan_ref, ssd_chunked, ssd_sequential

__all__ = [
    "EEGM2", "EEGM2Classifier", "EEGM2ClassifierConfig", "EEGM2Config", "EEGM2Encoder", "Mamba2",
    "RMSNormGated", "ReconLoss", "ReconLossConfig", "count_parameters", "mamba_chunk_scan",
    "mamba_chunk_scan_ref", "pool_time", "spectral_term", "ssd_chunked", "ssd_sequential",
]
