"""The chunked pure-PyTorch scan of the diagonal linear recurrence ``h_p = a_p h_{p-1} + x_p``
(:func:`chunk_scan`) and its chunk planning (:func:`plan_chunks`): the core of the reference
selective scan (:mod:`eegmamba.ops.scan_ref`). Imports nothing from the ops package.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


@torch.no_grad()
def chunk_scan(a: Tensor, x: Tensor, h0: Tensor | None = None, reverse: bool = False,
               a_chunk: Tensor | None = None) -> Tensor:
    """Solve a diagonal linear recurrence over ``S = nc * T`` steps laid out as (nc, T, ...).

    ``reverse=False``: ``h_p = a_p h_{p-1} + x_p`` with ``h_{-1} = h0``;
    ``reverse=True``:  ``h_p = a_p h_{p+1} + x_p`` with ``h_S = h0`` (zero if ``h0`` is None).
    Step ``p = c * T + t`` sits at ``[c, t]``.

    Two levels instead of ``S`` Python steps: (1) a local scan from a zero state runs in all
    ``nc`` chunks at once (``T`` vectorised steps), keeping only each chunk's final state;
    (2) the state entering each chunk is carried across chunks (``nc`` small steps) with the
    chunk decay products; (3) the scan runs again in all chunks at once, now from the right
    entering states, writing every ``h``. This reads ``a`` and ``x`` twice and writes ``h`` once
    (memory traffic dominates on CPU). Only products of the given decays are formed (never the
    exponential of a positive cumulative sum), so the result is as finite as the recurrence.
    No autograd; callers write their own backward.

    a, x : Tensor, shape (nc, T, ...), same shape; h0 : Tensor, shape (...), optional.
    a_chunk : Tensor, shape (nc, ...), optional
        Product of ``a`` over each chunk when the caller has it in closed form (for
        ``a = exp(Δ A)``: ``exp(A * sum Δ)``); else ``a.prod(1)``.
    Returns h : Tensor, shape (nc, T, ...), dtype of x.
    """
    nc, T = x.shape[0], x.shape[1]
    steps = range(T - 1, -1, -1) if reverse else range(T)
    H = x.new_empty((nc,) + tuple(x.shape[2:]))  # H[k]: state entering chunk k
    H[nc - 1 if reverse else 0] = 0 if h0 is None else h0
    if nc > 1:
        end = x[:, steps[0]].clone()  # (1) local final states
        for t in steps[1:]:
            torch.addcmul(x[:, t], a[:, t], end, out=end)
        if a_chunk is None:
            a_chunk = a.prod(1)
        order = range(nc - 2, -1, -1) if reverse else range(1, nc)
        for k in order:  # (2) carry
            src = k + 1 if reverse else k - 1
            torch.addcmul(end[src], a_chunk[src], H[src], out=H[k])
    h = torch.empty_like(x)  # (3) full scan from the entering states
    prev = steps[0]
    torch.addcmul(x[:, prev], a[:, prev], H, out=h[:, prev])
    for t in steps[1:]:
        torch.addcmul(x[:, t], a[:, t], h[:, prev], out=h[:, t])
        prev = t
    return h


def plan_chunks(L: int, step_elements: int, chunk_size: int | None = None,
                segment_len: int | None = None, budget: int = 1 << 22) -> tuple[int, int]:
    """Choose ``(T, nc)``: chunk length and chunks per segment, for ``L`` steps.

    A segment (``nc * T`` steps) is what one pass of :func:`chunk_scan` holds in memory; its
    temporaries have ``nc * T * step_elements`` elements. The default keeps that near ``budget``
    (16 MiB of float32): below glibc's 32 MiB mmap threshold, so the allocator reuses memory
    instead of page-faulting fresh 100 MB buffers (that, not arithmetic, dominated on CPU),
    while segments stay long enough that the op count (each op a thread-pool round trip,
    costly on a loaded 2-core machine) stays low. ``T ~ sqrt(segment)`` minimises the
    ``2 T + nc`` Python steps per segment.
    """
    if segment_len is None:
        segment_len = max(1, min(L, budget // max(1, step_elements)))
    if chunk_size is None:
        chunk_size = max(1, int(round(math.sqrt(segment_len))))
    L = max(L, 1)
    chunk_size = min(chunk_size, L)
    if segment_len >= L:  # one segment covers the sequence
        return chunk_size, -(-L // chunk_size)
    return chunk_size, max(1, segment_len // chunk_size)
