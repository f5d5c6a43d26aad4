"""Stream input: finding LSL streams, one acquisition thread pulling every inlet, per-stream checks
(units, rate, format) and regular timestamps with gaps and jumps found, cue markers on the EEG's
clock, and the LSL configuration the package writes.

Flow: ``resolve`` → ``acquisition`` (one thread polling every ``inlet``; an inlet keeps its health,
and ``duplicates`` drops re-sent samples) →
``monitor`` (is the stream what it claims?)
→ ``timestamps`` (regular clock) → samples handed to ``realtime.loop``; ``markers`` feeds truth and
calibration.
"""
