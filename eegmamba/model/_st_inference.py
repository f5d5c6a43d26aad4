"""ST-Adaptive forward for CPU inference: spatial conv, dual-path tokenizer and their BatchNorms as
three matrix products over one time-major buffer, with no padding or transposing copies.

Same function as :class:`eegmamba.model.st_adaptive.STAdaptive` in eval mode (running statistics),
up to float rounding (``tests/model/test_st_inference.py``). Used only when no gradient is needed,
no submodule has a forward hook, every BatchNorm is in eval mode with running statistics, the spatial kernel is 1 and each tokenizer
kernel is a multiple of its stride (the defaults); otherwise the reference modules run.

For a batch of windows ``x (B, C, L)``:

1. ``x`` is copied time-major into a zero-padded ``(B, P + L + R, C)`` block (``P`` = the largest tokenizer
   padding; ``C`` = 22 electrodes, so this copy is ~6x smaller than padding the 128-channel
   ``y_SA``), and ``y = GELU(x_pad^T W_SA' + b_SA')`` is computed time-major ``(B, P + L + R, D)``,
   the BatchNorm folded into ``W_SA', b_SA'``; the ``P`` and ``R`` padding rows are then set to 0,
   which is the tokenizer convs' zero padding of ``y_SA``.
2. For a path with kernel ``k = m s`` and padding ``p``, its padded input cut into ``s``-sample
   segments is a *view* of that buffer (``(B, n_seg, s D)``, rows ``s D`` apart, starting at row
   ``P - p``); ``Z = S W_seg'^T`` by one batched GEMM and the tokens are the sum of ``m`` shifted
   column blocks of ``Z`` (as :mod:`eegmamba.ops._strided_conv`, with the segment's samples
   time-major), the BatchNorm folded into ``W_seg'`` and the bias; GELU in place.

What it saves per MI window (22 x 600 → 90 tokens, batch 32, one thread, measured under load, torch
profiler): the oneDNN pointwise conv (~0.9 ms at batch 32 vs ~0.06 ms as a GEMM), two pads of the
(128, 600) signal (~0.7 ms), two segment transposes (~0.5 ms) and three BatchNorm passes.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def _bn_affine(bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)`` with ``bn(v) == v * scale + shift`` per channel (eval mode)."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


def applicable(st, x: torch.Tensor, task: str) -> bool:
    """True when :func:`forward` computes exactly what ``st`` computes for ``x``."""
    if st.training or x.device.type != "cpu" or x.dim() != 3 or task not in st.spatial.branch_of:
        return False
    sp, tok = st.spatial, st.tokenizer
    conv = sp.branches[sp.branch_of[task]]
    if getattr(tok, "kind", "conv") != "conv" or tok.small.conv.groups > 1 or tok.wide.conv.groups > 1:
        return False  # the dense conv paths only
    if conv.kernel_size[0] != 1 or x.shape[1] != conv.in_channels:
        return False
    mods = [conv, tok.small.conv, tok.wide.conv]
    norms = [m.norm[task] if task in m.norm else None for m in (sp, tok.small, tok.wide)]
    if any(n is None or n.training or n.running_var is None for n in norms):
        return False
    if any(p.kernel % p.stride for p in (tok.small, tok.wide)):
        return False
    if torch.is_grad_enabled() and any(p.requires_grad for m in mods + norms for p in m.parameters()):
        return False
    # a hook on a submodule must see its call (this path calls none of them)
    subs = [sp, tok, tok.small, tok.wide, sp.act, tok.small.act, tok.wide.act] + mods + norms
    return not any(m._forward_hooks or m._forward_pre_hooks for m in subs)


def _folded(st, task: str) -> dict:
    """The BatchNorm-folded weights of ``task``, cached on ``st`` while parameters and statistics
    keep their versions."""
    sp, tok = st.spatial, st.tokenizer
    conv = sp.branches[sp.branch_of[task]]
    mods = [conv, sp.norm[task], tok.small.conv, tok.small.norm[task], tok.wide.conv,
            tok.wide.norm[task]]
    key = tuple((t.data_ptr(), t._version) for m in mods for t in
                list(m.parameters()) + list(m.buffers()))
    cache = st.__dict__.setdefault("_inference_cache", {})
    hit = cache.get(task)
    if hit is not None and hit[0] == key:
        return hit[1]
    with torch.no_grad():
        scale, shift = _bn_affine(sp.norm[task])
        if conv.bias is not None:
            shift = shift + conv.bias * scale
        out = {"sa_w": (conv.weight[:, :, 0] * scale[:, None]).t().contiguous(),  # (C, D)
               "sa_b": shift.contiguous()}
        for name, path in (("small", tok.small), ("wide", tok.wide)):
            w = path.conv.weight  # (D_out, D_in, m s)
            d_out, d_in, k = w.shape
            s = path.stride
            m = k // s
            sc, sh = _bn_affine(path.norm[task])
            if path.conv.bias is not None:
                sh = sh + path.conv.bias * sc
            # row j*D_out + o, column t*D_in + c  =  w[o, c, j*s + t] * scale[o]
            wseg = (w * sc[:, None, None]).view(d_out, d_in, m, s).permute(2, 0, 3, 1)
            out[name] = (wseg.reshape(m * d_out, s * d_in).t().contiguous(), sh.contiguous(),
                         m, s, path.conv.padding[0], k)
    cache[task] = (key, out)
    return out


def tokens(st, x: torch.Tensor, task: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The dual-path tokenizer's ``(small (B, N_s, D), wide (B, N_w, D))`` tokens of ``x`` as
    ``STAdaptive.forward`` computes them, when :func:`applicable` (it places the class token)."""
    f = _folded(st, task)
    B, C, L = x.shape
    D = f["sa_w"].shape[1]
    P = max(f[n][4] for n in ("small", "wide"))
    geo = {}  # path -> (tokens, segments)
    for n in ("small", "wide"):
        _, _, m, s, p, k = f[n]
        n_tok = (L + 2 * p - k) // s + 1
        geo[n] = (n_tok, n_tok + m - 1)
    T = max(P + L, *(P - f[n][4] + geo[n][1] * f[n][3] for n in geo))
    xp = x.new_zeros(B, T, C)  # time-major, zero-padded input
    xp[:, P:P + L] = x.transpose(1, 2)
    y = torch.addmm(f["sa_b"], xp.view(B * T, C), f["sa_w"]).view(B, T, D)
    torch.ops.aten.gelu_(y)
    y[:, :P].zero_()
    y[:, P + L:].zero_()
    parts = []
    for n in ("small", "wide"):
        wt, sh, m, s, p, _ = f[n]
        n_tok, nseg = geo[n]
        seg = y.as_strided((B, nseg, s * D), (T * D, s * D, 1), y.storage_offset() + (P - p) * D)
        z = torch.matmul(seg, wt)  # (B, nseg, m D_out); one GEMM when the view folds (wide path)
        d_out = z.shape[2] // m
        t = torch.add(z[:, :n_tok, :d_out], sh)
        for j in range(1, m):
            t += z[:, j:j + n_tok, j * d_out:(j + 1) * d_out]
        parts.append(torch.ops.aten.gelu_(t))
    return parts[0], parts[1]
