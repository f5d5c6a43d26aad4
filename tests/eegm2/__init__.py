"""Tests of eegmamba.eegm2 (EEGM2 / Mamba-2 SSD)."""
