"""Task-aware classifier (paper Appendix E.2, Eq. 12): one linear head per task on the class token.

With a single task this is the "standard classifier" of the single-task model (Appendix B).
"""

from __future__ import annotations

import torch
import torch.nn as nn


class TaskAwareClassifier(nn.Module):
    """``logits_i = Linear_i(t_cls)``: ``t_cls (B, D)`` → ``(B, K_i)`` for task ``i``.

    A final LayerNorm and dropout precede the heads (our choice, as in ViT's class-token head).
    """

    def __init__(self, d_model: int, n_classes: dict[str, int], dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({name: nn.Linear(d_model, k) for name, k in n_classes.items()})

    def forward(self, t_cls: torch.Tensor, task: str) -> torch.Tensor:
        if task not in self.heads:
            raise ValueError(f"unknown task {task!r}; heads exist for {list(self.heads)}")
        return self.heads[task](self.dropout(self.norm(t_cls)))
