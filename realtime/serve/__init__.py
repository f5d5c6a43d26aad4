"""Serving many streams with several processes: ``--workers N`` (a supervisor and N worker
processes on one machine) and ``--shard K/N`` (N machines), shared out by a stable hash of each
stream's key (``sharding``); ``supervisor``, ``worker``, ``merge`` (stats across workers),
``command`` (the ``eegmamba-live`` side)."""
