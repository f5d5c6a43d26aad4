"""eegmamba-live's real-time side, in the order the data flows:

- ``stream``: LSL input (resolve, acquisition, checks, timestamps, markers, LSL config)
- ``loop``: pipelines, scheduling, batched inference, smoothing, outlets
- ``screen``: dashboard, panels, signal quality, stream listing
- ``calibration``: live fine-tuning and hot-swap
- ``replay``: a recording played as a live stream
- ``session`` assembles these from user options; ``stats`` holds the snapshot types every layer
  shares; ``cli_live`` is ``eegmamba-live``.
"""
