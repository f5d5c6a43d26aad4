"""A recording as a real-time LSL stream: ``player`` (EEG outlet at the file's rate, annotations as
a Markers outlet) and ``eegmamba-replay`` (``cli``).
"""
