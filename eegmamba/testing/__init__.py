"""Helpers for tests and benchmarks that ship with the package (as mne-lsl ships ``utils/_tests``).

- :mod:`eegmamba.testing.synthetic_edf`: a SYNTHETIC EDF+ recording with class-dependent rhythms
  and an optional sample-index channel (``python -m eegmamba.testing.synthetic_edf --help``).
- :mod:`eegmamba.testing.fault_outlet`: an LSL outlet that replays a recording with one scripted
  fault (gap, jump, burst, ...), for the live loop's fault tests and ``benchmarks/fault_matrix.py``.
- :mod:`eegmamba.testing.xdf_writer`: writes a recording and its annotations as an XDF 1.0 file
  (``python -m eegmamba.testing.xdf_writer --help``).

Nothing in the product imports this package.
"""
