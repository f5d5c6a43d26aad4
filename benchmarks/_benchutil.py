"""Small helpers shared by the benchmark scripts in ``benchmarks/``."""

from __future__ import annotations

import resource


def rss_now_kib() -> int:
    """Current resident set size in KiB (Linux ``/proc``; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
