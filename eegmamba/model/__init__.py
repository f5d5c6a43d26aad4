"""The EEGMamba model: one module per paper block (see each module's docstring for its section).

Import the public API from ``eegmamba`` (``from eegmamba import EEGMamba, EEGMambaConfig``); this
package's ``__init__`` stays empty so that low-level modules (scan backends) import without the model.
"""
