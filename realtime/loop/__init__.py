"""The live loop: per (stream, profile) ``pipeline`` (channel pick, the shared preprocessing step,
the windowing rule) → ``live`` (scheduling, newest window only) → batched ``inference`` →
``smoothing`` → ``outlets`` (marker and probability streams, decision log).
"""
