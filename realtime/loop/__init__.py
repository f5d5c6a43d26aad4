"""The live loop: per (stream, profile) ``pipeline`` (channel pick, the shared preprocessing step,
the windowing rule) → ``scheduler`` (newest window only, batches sized by their measured cost,
priming of idle models) → batched ``inference`` → ``smoothing`` → ``outlets`` (marker and
probability streams, decision log); ``truth`` scores decisions against annotations or cues.
``live`` runs these in one thread (under ``runtime``'s process settings) over the outputs
``served`` keeps (streams may join while it runs).
"""
