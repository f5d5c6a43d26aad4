"""Live calibration: ``collect`` cue-labelled windows from the stream, fine-tune in a separate
lower-priority process (``worker``), hot-swap the model (``calibrator``).
"""
