"""The EEGMamba model: one module per paper block (see each module's docstring for its section).

Import the public API from ``eegmamba`` (``from eegmamba import EEGMamba, EEGMambaConfig``); this
package's ``__init__`` stays empty so that its modules import without the whole model. The scan
and conv kernels (backends, reference and fused scans, their dispatch) are in :mod:`eegmamba.ops`.
"""
