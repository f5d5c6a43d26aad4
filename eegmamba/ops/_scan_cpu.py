"""Fused CPU selective scan: numba kernels, forward and backward (backend ``"cpu_fused"``).

Imported lazily through :mod:`eegmamba.ops.dispatch` (numba is only needed where this backend
runs). The torch side (autograd, layouts, threads) is :mod:`eegmamba.ops.selective_scan_cpu`.

Layout. Channel-innermost and time-major per batch element: ``u``, ``δ``, ``z``, ``y`` are
(b, L, d) C-contiguous (the layout BiMamba's Linear layers produce); ``B`` and ``C`` are columns
``bo + g·n + k`` and ``co + g'·n + k`` of one (b, L, cols) array (``x_proj``'s output as is),
``g = c // grp[1]`` and ``g' = c // grp[2]`` the groups of channel ``c`` (group sizes; ``grp[0]``
the segment size that refines both); ``A2`` is ``A · log2(e)`` (float32, for the exp2 polynomial)
or ``A`` (float64), laid out (n, d). One work item is one batch element × one block of ``W = 64``
neighbouring channels inside one segment (a narrower last block where ``W`` does not divide it).

Forward, per work item (``h`` is (n, W): 4 KiB float32 for n = 16, stays in L1)::

    for s in time (forward, or backward for BiMamba's reverse branch):
        per channel (W lanes): Δ = softplus(δ + bias); Δu; y = D u
        for k in states:
            per channel (W lanes):  a = decay(Δ · A2[k]);  h[k] = a h[k] + Δu B[s, k];  y += C[s, k] h[k]
        per channel: out = y · silu(z)

The inner loops run over the W channels, so LLVM vectorises them over channels (8 AVX2 registers
of 8 float32 per state and step, 4 with AVX-512; the state ``k`` loop outside) with no horizontal
sums; ``decay`` is an inline polynomial (:mod:`eegmamba.ops._scan_cpu_math`). Checked with
``inspect_asm`` (AVX2): the state update is ~14 vector instructions per 8 channels (the
polynomial's FMAs included), no calls, no gathers, no horizontal adds.

Backward. The forward also stores the state entering every ``K``-step chunk (``ck``:
(b, ceil(L / K), n, d)). The backward walks the chunks from the last to the first: it recomputes
the chunk's states and decays from its checkpoint into L2-resident buffers (``(K + 1) n W`` states,
``K n W`` decays), then runs the adjoint recurrence ``g_s = dL/dh_s = C_s gy_s + a_{s+1} g_{s+1}``
backwards through the chunk, with

    dL/dΔ_s  += Σ_k g a h_{s-1} A  +  u Σ_k g B        dL/dA    += Σ_s g a h_{s-1} Δ
    dL/du_s   = Δ Σ_k g B + D gy                        dL/dB_sk  = Σ_c g Δ u
    dL/dC_sk  = Σ_c gy h_s                              (+ dL/dz, dL/dD, dL/d bias from gy)

starting from ``g_{L-1} = dL/d(last state)`` when the last state is used.

The two channel sums (over the W lanes of a block) are done once per chunk by :func:`_bc_sums`,
the only function compiled with re-association allowed (so LLVM vectorises its sums); the
polynomial exp must not be re-associated, so the main kernels are not.
"""

from __future__ import annotations

import os
import tempfile

import numba
import numpy as np
from numba import njit, prange

from eegmamba.ops._scan_cpu_math import decay, dsilu, sigmoid, softplus

W = 64  # channels per work item: 8 AVX2 / 4 AVX-512 float32 registers (32 was slower)
CHUNK = 16  # K: steps per recomputed chunk in the backward; (K + 1) n W states in the buffer


def _writable(path: str) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


def _configure_cache() -> bool:
    """Whether numba may cache the compiled kernels, and where.

    numba writes beside this file (``__pycache__``) or in the user cache directory; where both
    are read-only (a system site-packages and no home) it would raise at import, so we point
    ``NUMBA_CACHE_DIR`` to a per-user temp directory, and compile without caching if even that
    is not writable. A user's ``NUMBA_CACHE_DIR`` is respected.
    """
    if numba.config.CACHE_DIR:
        return True
    if _writable(os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")):
        return True
    from numba.misc.appdirs import AppDirs

    if _writable(AppDirs(appname="numba", appauthor=False).user_cache_dir):
        return True
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    tmp = os.path.join(tempfile.gettempdir(), f"eegmamba-numba-cache-{uid}")
    if _writable(tmp):
        numba.config.CACHE_DIR = tmp
        return True
    return False


CACHE = _configure_cache()
if "NUMBA_THREADING_LAYER" not in os.environ:
    # numba would pick its OpenMP layer: a second OpenMP runtime beside torch's, whose idle
    # threads spin while the other's work (2 cores here). The workqueue layer's threads sleep;
    # it takes one launch at a time, which selective_scan_cpu's lock guarantees.
    numba.config.THREADING_LAYER = "workqueue"
_FM = {"contract", "arcp", "nsz"}  # no "reassoc": it would break the exp's range reduction
_OPTS = dict(cache=CACHE, fastmath=_FM, error_model="numpy", nogil=True)


@njit(**_OPTS)
def _item(j, d, seg):
    """Work item ``j`` -> (batch, first channel, channels, block index within the batch).

    Channels are cut into segments of ``seg`` (the largest size that lies inside one B group and
    one C group), each segment into blocks of ``W`` (the last one narrower if ``W ∤ seg``)."""
    nbs = (seg + W - 1) // W
    nblk = (d // seg) * nbs
    b, r = j // nblk, j % nblk
    c0 = (r // nbs) * seg + (r % nbs) * W
    return b, c0, min(W, (r // nbs + 1) * seg - c0), r


@njit(**_OPTS)
def _block_params(A2, bias, D, uc0, ucw, Ab, Bb, Db):
    """The block's ``A2`` (n, W), bias and D (W,); zero past ``cw`` (A = 0 and Δu = 0 there,
    so those lanes' states stay 0)."""
    for k in range(Ab.shape[0]):
        for c in range(ucw):
            Ab[k, c] = A2[k, uc0 + c]
    for c in range(ucw):
        Bb[c] = bias[uc0 + c]
    if D.shape[0]:
        for c in range(ucw):
            Db[c] = D[uc0 + c]


# The time loops below are written out in full, with no calls: LLVM does not inline helpers of
# this size, and a call per step (dozens of array fields as arguments, no alias information
# across it) costs more than the step. Loops over ``cw`` (a run-time count) only copy between
# the (b, L, d) arrays and W-lane local rows; the arithmetic runs in loops of exactly W lanes on
# local rows, with the flags tested outside them: those are the loops LLVM vectorises well.


@njit(**_OPTS)
def _fwd_item(j, u, dl, bias, A2, bc, bo, co, grp, D, z, out, ck, last, has_d, has_z, sp, rev,
              K):
    L, d, n = u.shape[1], u.shape[2], A2.shape[0]
    b, c0, cw, _ = _item(j, d, grp[0])
    uc0, ucw = np.uint64(c0), np.uint64(cw)
    bk0, ck0 = bo + (c0 // grp[1]) * n, co + (c0 // grp[2]) * n
    ty = u.dtype
    Ab, Bb, Db = np.zeros((n, W), ty), np.zeros(W, ty), np.zeros(W, ty)
    _block_params(A2, bias, D, uc0, ucw, Ab, Bb, Db)
    h = np.zeros((n, W), ty)
    xu, xd, xz = np.zeros(W, ty), np.zeros(W, ty), np.zeros(W, ty)
    dt, du, y = np.zeros(W, ty), np.zeros(W, ty), np.zeros(W, ty)
    for s in range(L):
        t = L - 1 - s if rev else s
        if K > 0 and s % K == 0:
            for k in range(n):
                for c in range(ucw):
                    ck[b, s // K, k, uc0 + c] = h[k, c]
        for c in range(ucw):
            xu[c] = u[b, t, uc0 + c]
            xd[c] = dl[b, t, uc0 + c] + Bb[c]
        if sp:
            for c in range(W):
                x = softplus(xd[c])
                dt[c] = x
                du[c] = x * xu[c]
                y[c] = Db[c] * xu[c]  # D = 0 when absent: Db is zeros
        else:
            for c in range(W):
                dt[c] = xd[c]
                du[c] = xd[c] * xu[c]
                y[c] = Db[c] * xu[c]
        for k in range(n):
            bk, ckk = bc[b, t, bk0 + k], bc[b, t, ck0 + k]
            for c in range(W):
                hv = decay(dt[c] * Ab[k, c]) * h[k, c] + du[c] * bk
                h[k, c] = hv
                y[c] += ckk * hv
        if has_z:
            for c in range(ucw):
                xz[c] = z[b, t, uc0 + c]
            for c in range(W):
                y[c] *= xz[c] * sigmoid(xz[c])
        for c in range(ucw):
            out[b, t, uc0 + c] = y[c]
    for k in range(n):
        for c in range(ucw):
            last[b, uc0 + c, k] = h[k, c]


@njit(cache=CACHE, fastmath={"reassoc", "contract", "nsz", "arcp"}, error_model="numpy",
      nogil=True)
def _bc_sums(G, H, DU, GY, m, gbc, slot, b, ts, bk0, ck0):
    """Per step i < m and state k: dL/dB = Σ_c G[i,k,c] DU[i,c], dL/dC = Σ_c GY[i,c] H[i+1,k,c],
    added into ``gbc[slot, b, ts[i], ...]``. Re-association allowed: the channel sums vectorise."""
    for i in range(m):
        t = ts[i]
        for k in range(G.shape[1]):
            sb = G[i, k, 0] * DU[i, 0]
            sc = GY[i, 0] * H[i + 1, k, 0]
            for c in range(1, W):
                sb += G[i, k, c] * DU[i, c]
                sc += GY[i, c] * H[i + 1, k, c]
            gbc[slot, b, t, bk0 + k] += sb
            gbc[slot, b, t, ck0 + k] += sc


@njit(**_OPTS)
def _bwd_item(j, u, dl, bias, A2, bc, bo, co, grp, D, z, ck, gout, glast, has_d, has_z, sp,
              rev, K, inv_scale, gu, gdl, gz, gA, gD, gbias, gbc):
    L, d, n = u.shape[1], u.shape[2], A2.shape[0]
    b, c0, cw, r = _item(j, d, grp[0])
    uc0, ucw = np.uint64(c0), np.uint64(cw)
    bk0, ck0 = bo + (c0 // grp[1]) * n, co + (c0 // grp[2]) * n
    # partial sums: serial runs add into slot 0; parallel ones get a slot per channel block
    # (dL/dB, dL/dC: blocks of one group share columns) and per batch element (dL/dA, D, bias)
    slot_bc = r % gbc.shape[0]
    slot_a = b % gA.shape[0]
    ty = u.dtype
    Ab, Bb, Db = np.zeros((n, W), ty), np.zeros(W, ty), np.zeros(W, ty)
    _block_params(A2, bias, D, uc0, ucw, Ab, Bb, Db)
    H = np.zeros((K + 1, n, W), ty)  # state entering the chunk, then after each of its steps
    G = np.zeros((K, n, W), ty)  # adjoint states g_s of the chunk
    AD = np.zeros((K, n, W), ty)  # decays exp(Δ A) of the chunk
    XU, XD = np.zeros((K, W), ty), np.zeros((K, W), ty)  # u, δ + bias per step
    DT, DU = np.zeros((K, W), ty), np.zeros((K, W), ty)  # Δ, Δu per step
    Y, GY = np.zeros((K, W), ty), np.zeros((K, W), ty)  # y before the gate, dL/dy per step
    xg, xz, xgz = np.zeros(W, ty), np.zeros(W, ty), np.zeros(W, ty)
    gy, dt, gdt, gu_, accA, accB = (np.zeros(W, ty), np.zeros(W, ty), np.zeros(W, ty),
                                    np.zeros(W, ty), np.zeros(W, ty), np.zeros(W, ty))
    gh = np.zeros((n, W), ty)  # decay_{s+1} g_{s+1}, carried backwards
    gA_acc = np.zeros((n, W), ty)
    gD_acc, gb_acc = np.zeros(W, ty), np.zeros(W, ty)
    y = np.zeros(W, ty)
    ts = np.zeros(K, np.int64)
    for k in range(n):
        for c in range(ucw):
            gh[k, c] = glast[b, uc0 + c, k]
    for jc in range((L + K - 1) // K - 1, -1, -1):
        s0 = jc * K
        m = min(L, s0 + K) - s0
        for k in range(n):  # recompute the chunk's states from its checkpoint
            for c in range(ucw):
                H[0, k, c] = ck[b, jc, k, uc0 + c]
        for i in range(m):
            t = L - 1 - (s0 + i) if rev else s0 + i
            ts[i] = t
            for c in range(ucw):
                XU[i, c] = u[b, t, uc0 + c]
                XD[i, c] = dl[b, t, uc0 + c] + Bb[c]
            if sp:
                for c in range(W):
                    x = softplus(XD[i, c])
                    dt[c] = x
                    DU[i, c] = x * XU[i, c]
                    y[c] = Db[c] * XU[i, c]
            else:
                for c in range(W):
                    dt[c] = XD[i, c]
                    DU[i, c] = XD[i, c] * XU[i, c]
                    y[c] = Db[c] * XU[i, c]
            for k in range(n):  # as in the forward, H[i] -> H[i + 1]
                bk, ckk = bc[b, t, bk0 + k], bc[b, t, ck0 + k]
                for c in range(W):
                    a = decay(dt[c] * Ab[k, c])
                    AD[i, k, c] = a  # kept for the adjoint: one exp per step and state, not two
                    hv = a * H[i, k, c] + DU[i, c] * bk
                    H[i + 1, k, c] = hv
                    y[c] += ckk * hv
            for c in range(W):
                Y[i, c] = y[c]
                DT[i, c] = dt[c]
        for i in range(m - 1, -1, -1):  # the adjoint, backwards through the chunk
            t = ts[i]
            for c in range(ucw):
                xg[c] = gout[b, t, uc0 + c]
            if has_z:
                for c in range(ucw):
                    xz[c] = z[b, t, uc0 + c]
                for c in range(W):
                    sg = sigmoid(xz[c])
                    gy[c] = xg[c] * xz[c] * sg
                    xgz[c] = xg[c] * Y[i, c] * dsilu(xz[c], sg)
                for c in range(ucw):
                    gz[b, t, uc0 + c] = xgz[c]
            else:
                for c in range(W):
                    gy[c] = xg[c]
            for c in range(W):
                GY[i, c] = gy[c]
                dt[c] = DT[i, c]
                accA[c] = 0
                accB[c] = 0
            for k in range(n):
                bk, ckk = bc[b, t, bk0 + k], bc[b, t, ck0 + k]
                for c in range(W):
                    gv = gh[k, c] + gy[c] * ckk
                    a = AD[i, k, c]
                    x = gv * a * H[i, k, c]
                    accA[c] += x * Ab[k, c]
                    gA_acc[k, c] += x * dt[c]
                    accB[c] += gv * bk
                    gh[k, c] = gv * a
                    G[i, k, c] = gv
            for c in range(W):
                gdt[c] = accA[c] * inv_scale + accB[c] * XU[i, c]
                gu_[c] = accB[c] * dt[c] + gy[c] * Db[c]
                gD_acc[c] += gy[c] * XU[i, c]
            if sp:
                for c in range(W):
                    gdt[c] *= sigmoid(XD[i, c])
            for c in range(W):
                gb_acc[c] += gdt[c]
            for c in range(ucw):
                gu[b, t, uc0 + c] = gu_[c]
                gdl[b, t, uc0 + c] = gdt[c]
        _bc_sums(G, H, DU, GY, m, gbc, slot_bc, b, ts, bk0, ck0)
    for k in range(n):
        for c in range(ucw):
            gA[slot_a, k, uc0 + c] += gA_acc[k, c]
    for c in range(ucw):
        gD[slot_a, uc0 + c] += gD_acc[c]
        gbias[slot_a, uc0 + c] += gb_acc[c]


@njit(**_OPTS)
def fwd_serial(nwork, u, dl, bias, A2, bc, bo, co, grp, D, z, out, ck, last, has_d, has_z, sp,
               rev, K):
    for j in range(nwork):
        _fwd_item(j, u, dl, bias, A2, bc, bo, co, grp, D, z, out, ck, last, has_d, has_z, sp,
                  rev, K)


@njit(parallel=True, **_OPTS)
def fwd_parallel(nwork, u, dl, bias, A2, bc, bo, co, grp, D, z, out, ck, last, has_d, has_z,
                 sp, rev, K):
    for j in prange(nwork):
        _fwd_item(j, u, dl, bias, A2, bc, bo, co, grp, D, z, out, ck, last, has_d, has_z, sp,
                  rev, K)


@njit(**_OPTS)
def bwd_serial(nwork, u, dl, bias, A2, bc, bo, co, grp, D, z, ck, gout, glast, has_d, has_z,
               sp, rev, K, inv_scale, gu, gdl, gz, gA, gD, gbias, gbc):
    for j in range(nwork):
        _bwd_item(j, u, dl, bias, A2, bc, bo, co, grp, D, z, ck, gout, glast, has_d, has_z, sp,
                  rev, K, inv_scale, gu, gdl, gz, gA, gD, gbias, gbc)


@njit(parallel=True, **_OPTS)
def bwd_parallel(nwork, u, dl, bias, A2, bc, bo, co, grp, D, z, ck, gout, glast, has_d, has_z,
                 sp, rev, K, inv_scale, gu, gdl, gz, gA, gD, gbias, gbc):
    for j in prange(nwork):
        _bwd_item(j, u, dl, bias, A2, bc, bo, co, grp, D, z, ck, gout, glast, has_d, has_z, sp,
                  rev, K, inv_scale, gu, gdl, gz, gA, gD, gbias, gbc)
