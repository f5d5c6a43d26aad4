"""Task-aware Mixture of Experts with an EEG universal expert (paper Section 2.4, Appendix E.1).

For tokens ``T (B, L, D)`` and a task token ``t_task (B, D)``:

* ``T_cat = Concat(T, Broadcast(t_task), dim=-1)``                                  (Eq. 9)
* ``G = Linear_Gate(T_cat) + ε · Softplus(Linear_Noise(T_cat))``, ε ~ N(0, 1) while training
* ``e = SoftMax(Top_k(G, k))`` — non-top-k logits are set to -inf before the softmax  (Eq. 8)
* ``T* = Σ_i e_i · E_i(T) + ω · E^u(T)``, ``ω = 1 - max(e)``                         (Eq. 10)
* ``L_b = Std(e) / Mean(e)`` over the per-expert importance (Eq. 11, Shazeer et al., 2016) and the
  router z-loss ``L_z = mean over tokens of (log Σ_j exp G⁰_j)²`` on the clean gate logits
  ``G⁰ = Linear_Gate(T_cat)`` (ST-MoE, Zoph et al., 2022: the z-loss keeps the router's own logits
  small; the noise is a sampling device, not a quantity to penalise); ``L_aux = L_b + L_z``.

Routing is per token. The paper does not say how the MoE block is wired into the stack; we use a
pre-norm residual block (``T + MoE(LayerNorm(T))``), as in the Transformer MoE layers it cites.
Experts are 2-layer MLPs (Fig. 10) with GELU between; the hidden width is our choice (config).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


class Expert(nn.Module):
    """Two-layer MLP ``D -> hidden -> D`` with GELU (Fig. 10)."""

    def __init__(self, d_model: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, hidden)
        self.fc2 = nn.Linear(hidden, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


@dataclass
class Routing:
    """What the last forward routed (for tests, visualisation and the aux loss).

    ``indices (S, k)`` and ``weights (S, k)`` per flattened token, ``omega (S,)`` universal weight,
    ``logits (S, E)`` the gate logits that routed (noisy while training), ``clean_logits (S, E)``
    the gate logits without noise (what the z-loss sees).
    """

    indices: torch.Tensor
    weights: torch.Tensor
    omega: torch.Tensor
    logits: torch.Tensor
    clean_logits: torch.Tensor


def balance_loss(gates: torch.Tensor) -> torch.Tensor:
    """``L_b = Std(importance) / Mean(importance)``; ``gates (S, E)`` dense (zeros off top-k)."""
    importance = gates.sum(dim=0)
    return importance.std(unbiased=False) / (importance.mean() + 1e-9)


def router_z_loss(logits: torch.Tensor) -> torch.Tensor:
    """``L_z = mean_s (logsumexp_j logits[s, j])²``; ``logits (S, E)``."""
    return torch.logsumexp(logits.float(), dim=-1).pow(2).mean()


class TaskAwareMoE(nn.Module):
    """Pre-norm residual task-aware MoE block: ``T (B, L, D)``, ``task_token (B, D)`` → ``(B, L, D)``.

    Flags reproduce the paper's ablations: ``task_aware_gating=False`` gates on ``T`` alone;
    ``universal_expert=False`` drops ``E^u``; ``noisy_gating=False`` drops the noise term.
    After each forward, ``self.aux_loss`` holds ``L_b + L_z``, ``self.aux_parts`` the two parts
    (``{"balance": L_b, "z": L_z}``, detached) and ``self.routing`` the decisions.
    """

    def __init__(
        self,
        d_model: int,
        n_experts: int = 8,
        top_k: int = 2,
        hidden: int = 512,
        universal_expert: bool = True,
        task_aware_gating: bool = True,
        noisy_gating: bool = True,
    ) -> None:
        super().__init__()
        if top_k > n_experts:
            raise ValueError(f"top_k={top_k} > n_experts={n_experts}")
        self.n_experts, self.top_k = n_experts, top_k
        self.task_aware_gating, self.noisy_gating = task_aware_gating, noisy_gating
        gate_in = 2 * d_model if task_aware_gating else d_model
        self.norm = nn.LayerNorm(d_model)
        self.linear_gate = nn.Linear(gate_in, n_experts, bias=False)
        self.linear_noise = nn.Linear(gate_in, n_experts, bias=False)
        # Zero-initialised gates start with uniform routing (Shazeer et al., 2016 do the same).
        nn.init.zeros_(self.linear_gate.weight)
        nn.init.zeros_(self.linear_noise.weight)
        self.experts = nn.ModuleList(Expert(d_model, hidden) for _ in range(n_experts))
        self.universal = Expert(d_model, hidden) if universal_expert else None
        self.aux_loss: torch.Tensor = torch.zeros(())
        self.aux_parts: dict[str, torch.Tensor] = {}
        self.routing: Routing | None = None

    def gate_logits(self, tokens: torch.Tensor, task_token: torch.Tensor | None,
                    with_clean: bool = False):
        """Eq. 9: ``tokens (B, L, D)``, ``task_token (B, D)`` → logits ``(B, L, E)`` (noisy while
        training); with ``with_clean`` the pair ``(logits, clean logits)``."""
        if self.task_aware_gating:
            if task_token is None:
                raise ValueError("task-aware gating needs a task token")
            tokens = torch.cat([tokens, task_token[:, None, :].expand_as(tokens)], dim=-1)
        clean = self.linear_gate(tokens)
        logits = clean
        if self.noisy_gating and self.training:
            logits = clean + torch.randn_like(clean) * F.softplus(self.linear_noise(tokens))
        return (logits, clean) if with_clean else logits

    def forward(self, t: torch.Tensor, task_token: torch.Tensor | None = None) -> torch.Tensor:
        b, l, d = t.shape
        h = self.norm(t)
        logits, clean = self.gate_logits(h, task_token, with_clean=True)
        logits = logits.reshape(b * l, self.n_experts)
        clean = clean.reshape(b * l, self.n_experts)
        top_val, top_idx = logits.topk(self.top_k, dim=-1)
        weights = torch.softmax(top_val.float(), dim=-1).to(h.dtype)  # = SoftMax(Top_k(G)) at top-k
        flat = h.reshape(b * l, d)
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            token_pos, slot = torch.nonzero(top_idx == e, as_tuple=True)
            if token_pos.numel():
                out.index_add_(0, token_pos, weights[token_pos, slot, None] * expert(flat[token_pos]))
        omega = 1.0 - weights.max(dim=-1).values
        if self.universal is not None:
            out = out + omega[:, None] * self.universal(flat)
        dense = torch.zeros_like(logits, dtype=weights.dtype).scatter(1, top_idx, weights)
        l_b, l_z = balance_loss(dense.float()), router_z_loss(clean)
        self.aux_loss = l_b + l_z
        self.aux_parts = {"balance": l_b.detach(), "z": l_z.detach()}
        self.routing = Routing(top_idx.detach(), weights.detach(), omega.detach(), logits.detach(),
                               clean.detach())
        return t + out.reshape(b, l, d)
