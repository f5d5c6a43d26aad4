"""What a person sees: the rich ``dashboard`` and its ``panels`` (pure functions of a stats
snapshot), per-channel ``signal_quality``, and the ``listing`` of ``eegmamba-live --list``.
"""
