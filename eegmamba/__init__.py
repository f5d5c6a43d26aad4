"""eegmamba: the EEGMamba model, preprocessing, data and training (never imports ``realtime``)."""

__version__ = "0.1.0"
