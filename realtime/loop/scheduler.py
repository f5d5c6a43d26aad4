"""Which windows the live loop classifies next, and when an idle model is warmed up.

The loop (:mod:`realtime.loop.live`) hands every complete window to :class:`Scheduler`, which
keeps at most one per pipeline (a newer one replaces it and the older is counted as ``stale``),
picks the next batch (the pipelines waiting longest that share a checkpoint, as many as fit the
batch budget by the model's measured :class:`BatchCost`), and primes a model that sat idle shortly
before its next window is due (:meth:`Scheduler.prime`).
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from realtime.loop.pipeline import PendingWindow, ProfilePipeline


class BatchCost:
    """Running estimate of one model's inference time for a batch: ``t(n) = a + b n`` seconds
    (``a``: per-call overhead, ``b``: per window), fitted by exponentially weighted least squares
    over the batches seen (weight ``decay`` per new batch). With one batch size seen so far,
    ``a = 0`` and ``b`` is its mean cost per window (pessimistic for bigger batches)."""

    def __init__(self, decay: float = 0.9) -> None:
        self.decay = decay
        self._s = np.zeros(5)  # weighted sums of 1, n, t, n², n t

    def add(self, n: int, seconds: float) -> None:
        self._s = self.decay * self._s + np.array([1.0, n, seconds, n * n, n * seconds])

    def coefficients(self) -> tuple[float, float]:
        w, sn, st, snn, snt = self._s
        var = w * snn - sn * sn
        if w <= 0:
            return 0.0, 0.0
        if var <= 1e-9 * max(w * snn, 1e-12):  # one batch size: cost per window only
            return 0.0, st / sn
        b = (w * snt - sn * st) / var
        a = (st - b * sn) / w
        if a < 0 or b <= 0:  # noise (a busy machine): fall back to the mean cost per window
            return 0.0, st / sn
        return a, b

    def fits(self, budget_s: float) -> int:
        """Largest batch expected to take at most ``budget_s`` seconds (at least 1)."""
        a, b = self.coefficients()
        return max(1, int((budget_s - a) / max(b, 1e-6)))


class Scheduler:
    """The windows waiting for inference, the batch cost model and the priming of idle models.

    Parameters
    ----------
    batch_budget_s : float, seconds one inference batch may take (see ``LiveLoop``)
    max_batch : int, at most this many windows per batch
    prime_lead_s : float | None, prime a model idle for ``prime_idle_s`` seconds this many seconds
        (plus the priming's own measured duration) before its next window is due; ``None``: off
    prime_idle_s : float, a model that classified within this many seconds is still warm
    """

    def __init__(self, batch_budget_s: float = 0.06, max_batch: int = 64,
                 prime_lead_s: float | None = 0.003, prime_idle_s: float = 0.05) -> None:
        self.batch_budget_s, self.max_batch = float(batch_budget_s), int(max_batch)
        self.prime_lead_s, self.prime_idle_s = prime_lead_s, prime_idle_s
        self._waiting: dict[int, PendingWindow] = {}  # per pipeline, the newest unclassified window
        self._cost: dict[str, BatchCost] = {}  # per model, the measured cost of a batch
        self._primed: dict[str, bool] = {}
        self._last_inferred: dict[str, float] = {}
        self._prime_cost: dict[str, float] = {}
        self.n_primed = 0

    @property
    def n_waiting(self) -> int:
        """Windows complete but not classified yet (at most one per pipeline)."""
        return len(self._waiting)

    def wait(self, p: PendingWindow) -> None:
        """``p`` waits for a batch; the window it replaces (same pipeline, older) is ``stale`` and
        hands on its place in the queue (the pipeline has been waiting since then)."""
        old = self._waiting.get(id(p.pipeline))
        if old is not None:
            old.pipeline.drops["stale"] += 1
        self._waiting[id(p.pipeline)] = p  # dict order: since when the pipeline waits

    def next_batch(self) -> list[PendingWindow]:
        """The pipeline waiting longest and the next longest of the same checkpoint, as many as fit
        the batch budget by the model's measured batch cost (one at first); empty when none waits.
        Under overload the pipelines take turns."""
        if not self._waiting:
            return []
        waiting = list(self._waiting.values())
        key = waiting[0].pipeline.model_key
        cost = self._cost.get(key)
        n = 1 if cost is None else cost.fits(self.batch_budget_s)
        return [p for p in waiting if p.pipeline.model_key == key][:min(n, self.max_batch)]

    def classified(self, batch: list[PendingWindow], started: float, inferred: float) -> None:
        """``batch`` (from :meth:`next_batch`) was classified from ``started`` to ``inferred``
        (local clock seconds): its windows stop waiting and the model's batch cost learns."""
        key = batch[0].pipeline.model_key
        self._cost.setdefault(key, BatchCost()).add(len(batch), inferred - started)
        self._last_inferred[key], self._primed[key] = inferred, False
        for p in batch:
            del self._waiting[id(p.pipeline)]

    def prime(self, pipelines_by_model: dict[str, list[ProfilePipeline]], wait: float,
              clock: Callable[[], float], flush: Callable[[ProfilePipeline], Iterable[PendingWindow]],
              warm: Callable[[str], None]) -> float:
        """Before a model's next window is due (:meth:`ProfilePipeline.due`), warm it and its
        pipelines up; return how long to wait for data until the next priming (at most ``wait``).

        An idle model's code and weights leave the caches within tens of ms (2-vCPU VM, one MI
        window: 3.5 ms back to back, 4.4 ms 10 ms after the last call, 11.5 ms after 0.5 s idle),
        so with few streams every window would meet a cold model. ``flush(pipeline)``: preprocess
        the pipeline's held chunks now (the windows it returns wait here); ``warm(model_key)``: one
        inference whose result is discarded."""
        if self.prime_lead_s is None:
            return wait
        now = clock()
        nxt = float("inf")
        for key, pipelines in pipelines_by_model.items():
            if self._primed.get(key):
                continue
            dues = [(d, p) for p in pipelines if (d := p.due()) is not None]
            if not dues:
                continue
            due = min(d for d, _ in dues)
            lead = self._prime_cost.get(key, 0.01) + self.prime_lead_s
            if now < due - lead:
                nxt = min(nxt, due - lead)
                continue
            self._primed[key] = True
            if now - self._last_inferred.get(key, -1e9) < self.prime_idle_s:
                continue
            t0 = clock()
            for d, p in dues:
                if d - lead <= now:
                    for w in flush(p):
                        self.wait(w)
            warm(key)
            cost = clock() - t0
            self._prime_cost[key] = cost if key not in self._prime_cost else \
                0.8 * self._prime_cost[key] + 0.2 * cost
            self.n_primed += 1
        return max(0.0, min(wait, nxt - clock()))

    def shutdown(self) -> None:
        """Windows still waiting are counted as dropped (``shutdown``)."""
        for p in self._waiting.values():
            p.pipeline.drops["shutdown"] += 1
        self._waiting.clear()
