"""eegmamba-live's real-time side, in the order the data flows:

- ``stream``: LSL input (resolve, acquisition and inlets, checks, duplicates, timestamps, markers
  and their pairing with EEG streams, LSL config)
- ``finder``: which visible streams a session serves (``--all``, several ``--stream``), joined
  to the running loop as they appear
- ``loop``: pipelines, scheduler (batches, priming), batched inference, smoothing, outlets, truth
  scoring, the served streams' outputs
- ``screen``: dashboard, panels, signal quality, stream listing
- ``calibration``: live fine-tuning and hot-swap
- ``replay``: a recording played as a live stream
- ``serve``: worker processes (``--workers``) and shards (``--shard``) over one stable hash
- ``session`` assembles these from user options; ``stats`` holds the snapshot types every layer
  shares; ``cli_live`` is ``eegmamba-live``.
"""
