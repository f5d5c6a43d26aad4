"""Samples a driver sends twice: recognised by their timestamp *and* values, dropped and counted.

Some drivers re-send a chunk they already sent (wireless headsets on reconnect, a driver retrying a
push it thinks failed): the same samples with the same timestamps arrive again. Seen by the timestamp
model (:mod:`realtime.stream.timestamps`) such a chunk is a step back in time, i.e. a clock ``jump``,
and every window touching it would be dropped, although no sample is missing and none is new.

:class:`DuplicateFilter` keeps the raw timestamps and values of the last ``keep`` samples received and
drops an incoming sample whose raw timestamp equals one of them *and* whose values equal that
sample's, exactly (LSL carries both bit for bit). Anything else stays: an overlapping push-stamped
chunk (earlier timestamps, new values), a real backward jump (new values), a repeated value at a new
time. Only regularly sampled numeric streams are filtered (two markers may legitimately repeat a
text at one instant).

Cost: a block whose first timestamp is after every one kept (the usual case) is only compared once;
otherwise its samples not after the newest are looked up among the kept ones.
"""

from __future__ import annotations

import numpy as np


class DuplicateFilter:
    """Drops re-sent samples of one stream (see module docstring).

    Parameters
    ----------
    n_channels : int
    keep : int, how many of the latest samples a re-sent one is looked for among
    """

    def __init__(self, n_channels: int, keep: int) -> None:
        self.keep = max(1, int(keep))
        self._stamps = np.full(self.keep, np.nan)
        self._values = np.zeros((self.keep, int(n_channels)))
        self._n = 0  # samples kept so far (ring position = _n % keep)
        self._newest = -np.inf
        self.n_duplicates = 0

    def __call__(self, samples: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """``samples`` (C, n) and their raw timestamps (n,) → the same without the samples already
        received, and how many were dropped."""
        n = raw.size
        if n == 0:
            return samples, raw, 0
        if raw[0] > self._newest and (n == 1 or bool(np.all(raw[1:] > raw[:-1]))):
            self._remember(samples, raw)
            return samples, raw, 0
        seen = min(self._n, self.keep)
        stamps = self._stamps[:seen]
        dup = np.zeros(n, dtype=bool)
        cand = np.flatnonzero(raw <= self._newest)
        if cand.size and seen:
            if cand.size * seen <= 250_000:  # the usual few overlapping samples: compare directly
                rows, cols = np.nonzero(raw[cand][:, None] == stamps[None, :])
                pairs = zip(cand[rows], cols)
            else:
                order = np.argsort(stamps, kind="stable")
                pos = np.minimum(np.searchsorted(stamps[order], raw[cand]), seen - 1)
                hit = stamps[order][pos] == raw[cand]
                pairs = zip(cand[hit], order[pos[hit]])
            for j, p in pairs:
                dup[j] |= np.array_equal(samples[:, j], self._values[p], equal_nan=True)
        if n > 1:  # re-sent within one pull: a stamp and its values twice in the block
            order = np.argsort(raw, kind="stable")
            for s in np.flatnonzero(raw[order][1:] == raw[order][:-1]):
                j, k = order[s + 1], order[s]
                dup[j] |= np.array_equal(samples[:, j], samples[:, k], equal_nan=True)
        n_dup = int(dup.sum())
        if n_dup:
            keep = ~dup
            samples, raw = samples[:, keep], raw[keep]
            self.n_duplicates += n_dup
        if raw.size:
            self._remember(samples, raw)
        return samples, raw, n_dup

    def _remember(self, samples: np.ndarray, raw: np.ndarray) -> None:
        """Keep the newest ``keep`` of these samples in the ring (two slice copies, no indexing)."""
        m = min(raw.size, self.keep)
        pos = self._n % self.keep
        first = min(m, self.keep - pos)
        self._stamps[pos:pos + first] = raw[raw.size - m:raw.size - m + first]
        self._values[pos:pos + first] = samples[:, raw.size - m:raw.size - m + first].T
        if first < m:
            self._stamps[:m - first] = raw[raw.size - m + first:]
            self._values[:m - first] = samples[:, raw.size - m + first:].T
        self._n += raw.size
        newest = raw[-1] if raw.size == 1 else raw.max()
        if newest > self._newest:
            self._newest = float(newest)
