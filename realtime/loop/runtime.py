"""Process-wide settings the live loop runs under: a frozen garbage collector and a short thread
switch interval."""

from __future__ import annotations

import gc
import sys
from contextlib import contextmanager
from typing import Iterator

_gc_frozen = False


def freeze_gc() -> None:
    """Once per process, before the loop first runs: collect, then move every object alive now
    (torch, numpy, mne, the models: ~290k objects) to the garbage collector's permanent generation.

    Python's cyclic collector stops every thread (the acquisition thread too) while it walks a
    generation. With those objects in the oldest generation a full collection took 214-337 ms
    (``benchmarks/bench_latency.py`` process, 5 during its setup); one in a long session is a third
    of a second of stalled streams. Frozen objects are never walked again, so the rare full
    collection only walks what the session allocated since. (In a 10-s one-stream run the loop
    itself triggered a single 0.15 ms young collection, with or without the freeze.)"""
    global _gc_frozen
    if not _gc_frozen:
        gc.collect()
        gc.freeze()
        _gc_frozen = True


@contextmanager
def switch_interval(seconds: float | None) -> Iterator[None]:
    """Python's thread switch interval set to ``seconds`` inside the block (``None``: left as it
    is), restored after.

    The acquisition thread's Python work and the loop take turns holding the GIL, and every torch
    operation of an inference gives it up and takes it back, so with Python's 5 ms the loop can
    wait that long at a hand-back. Measured with 64 streams: one pair of runs gave p50 78 → 36 ms
    at 0.5 ms, three alternating rounds a difference within this VM's run-to-run spread
    (docs/benchmarks.md); kept because it bounds that wait."""
    before = sys.getswitchinterval()
    if seconds is not None:
        sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(before)
