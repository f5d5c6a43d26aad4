"""Batched model inference for the live loop: one engine per process, models grouped by checkpoint.

Windows from every profile and stream that share a model are classified in one batch on the chosen
device. The engine warms each model up (first CUDA/oneDNN calls are slow) before the first window.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from eegmamba._checks import UserInputError
from eegmamba.checkpoint import load_checkpoint
from eegmamba.device import resolve_device

logger = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A checkpoint in memory: the model, its task name and the metadata it was saved with."""

    key: str
    model: torch.nn.Module
    task: str
    metadata: dict
    n_chans: int
    n_times: int
    class_names: tuple[str, ...]
    version: int = 0  # +1 each time a calibrated model replaces this one (realtime.calibration.calibrator)


def _check_resampler(checkpoint, metadata: dict) -> None:
    """Warn (one line) when a checkpoint was trained with another resampler than the live one (the
    linear-phase FIR before the causal one): its windows were shifted by ~25 ms at 160 Hz, so live
    windows are not exactly what it learned from."""
    pre = metadata.get("preprocessing")
    if isinstance(pre, dict) and (pre.get("resampler") or {}).get("lookahead_samples") != 0:
        logger.warning("%s was trained before the causal resampler (no preprocessing.resampler in "
                       "its metadata): live windows differ slightly from its training windows; "
                       "retrain it for exact online = offline parity", checkpoint)


class InferenceEngine:
    """Holds the live models; ``infer(key, X)`` returns class probabilities.

    Parameters
    ----------
    device : str, ``auto | cpu | cuda``
    delay_s : float, extra seconds slept per batch (for tests of a slow model: forces drops).
    amp : bool, bfloat16 autocast on CUDA. Off by default: the model is small, and float32 keeps
        live probabilities equal to the offline pipeline's.
    threads : int, torch intra-op threads on CPU. Default 1: a window is a small batch of small
        ops, and a second OpenMP thread only fights the acquisition thread for the cores (measured
        on 2 cores under load: p50 latency 2 s with 2 threads, 33 ms with 1).
    batch_threads : int, a batch of at least ``BIG_BATCH`` windows (many streams) is split into
        this many parts classified at once, one on the calling thread and the others on helper
        threads, each with ``threads`` torch threads (default 1: no splitting). Parts rather than
        OpenMP threads inside each operation: the parts share nothing, so a part whose core is busy
        only finishes later, while OpenMP's per-operation barriers wait for the slowest thread at
        every one of the model's ~150 operations (shared 2-core VM at load ~6, batch of 64: 147-182
        ms on one thread, 345-734 ms with 2 OpenMP threads).
    """

    BIG_BATCH = 8

    def __init__(self, device: str = "auto", delay_s: float = 0.0, amp: bool = False,
                 threads: int = 1, batch_threads: int | None = None) -> None:
        self.device = resolve_device(device)
        self.threads, self.batch_threads = threads, 1
        self._pool = None
        if self.device.type == "cpu":
            for name, v in (("--threads", threads), ("--batch-threads", batch_threads)):
                if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                    raise UserInputError(f"{name} must be an integer >= 1, got {v!r}")
            torch.set_num_threads(threads)
            self.batch_threads = 1 if batch_threads is None else batch_threads
            if self.batch_threads > 1:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(
                    self.batch_threads - 1, thread_name_prefix="inference",
                    initializer=torch.set_num_threads, initargs=(threads,))
        self.delay_s = float(delay_s)
        self.amp = bool(amp) and self.device.type == "cuda"
        self.models: dict[str, LoadedModel] = {}

    def load(self, checkpoint: str | Path) -> LoadedModel:
        """Load (once) the checkpoint folder; the key is its resolved path. The model is rebuilt
        from the name and config the checkpoint stores, through the one registry
        (``load_checkpoint`` → ``eegmamba.registry.build_model``): an EEGMamba variant, EEGNet or
        the Conformer is served the same way, by its single task (``model.config.tasks``)."""
        key = str(Path(checkpoint).resolve())
        if key not in self.models:
            model, meta = load_checkpoint(checkpoint, device=self.device)
            tasks = model.config.tasks
            if len(tasks) != 1:
                raise UserInputError(
                    f"{checkpoint}: live classification needs a single-task checkpoint per profile, "
                    f"this one has tasks {[t.name for t in tasks]}"
                )
            spec = tasks[0]
            _check_resampler(checkpoint, meta.get("metadata") or {})
            self.models[key] = LoadedModel(
                key, model, spec.name, meta, spec.n_chans, spec.n_times,
                spec.class_names or tuple(str(i) for i in range(spec.n_classes)),
            )
        return self.models[key]

    def replace(self, key: str, model: torch.nn.Module, metadata: dict) -> LoadedModel:
        """Put ``model`` (same task and shapes) under ``key`` in place of the current one, one version
        up; the next ``infer(key, ...)`` uses it. ``LiveLoop.swap_model`` is the live way to call it."""
        old = self.models[key]
        new = dataclasses.replace(old, model=model, metadata=metadata, version=old.version + 1)
        self.models[key] = new
        return new

    def alias(self, key: str, new_key: str) -> LoadedModel:
        """The model under ``key`` also under ``new_key`` (it keeps deciding there when ``key`` is
        replaced, e.g. the uncalibrated reference beside a calibration)."""
        ref = dataclasses.replace(self.models[key], key=new_key)
        self.models[new_key] = ref
        return ref

    def warm_up(self, n: int = 3) -> None:
        """Compile (or load from numba's cache) the fused CPU scan, then run each model ``n`` times
        on zeros so the first real window is not slow. ``compile_s``: seconds the first part took."""
        from eegmamba.ops import warmup

        self.compile_s = warmup("auto", self.device, backward=False)
        for m in self.models.values():
            x = np.zeros((1, m.n_chans, m.n_times), np.float32)
            for _ in range(n):
                self.infer(m.key, x)

    @torch.inference_mode()
    def _logits(self, m: LoadedModel, xt: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return m.model(xt, task=m.task)

    def close(self) -> None:
        """Stop the helper threads (``batch_threads`` > 1)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    @torch.inference_mode()
    def infer(self, key: str, x: np.ndarray) -> np.ndarray:
        """``x (B, C, T)`` float32 windows → probabilities ``(B, n_classes)`` float64."""
        m = self.models[key]
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
        if self._pool is not None and x.shape[0] >= self.BIG_BATCH:
            parts = torch.tensor_split(xt, self.batch_threads)
            futures = [self._pool.submit(self._logits, m, p) for p in parts[1:]]
            logits = torch.cat([self._logits(m, parts[0])] + [f.result() for f in futures])
        else:
            logits = self._logits(m, xt)
        probs = torch.softmax(logits.float(), dim=-1).cpu().numpy().astype(np.float64)
        if self.delay_s:
            time.sleep(self.delay_s)
        return probs
