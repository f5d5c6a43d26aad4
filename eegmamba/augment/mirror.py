"""Hemisphere mirror with label swap, for left/right paradigms: each channel takes the signal of
its 10-10 mirror (C3 ↔ C4, FC5 ↔ FC6, Cz stays; :func:`eegmamba.channels.mirror_name`) and the
classes of each declared pair are exchanged (imagining the left fist mirrored is imagining the
right fist). Classes not in a pair keep their label (rest mirrored is rest)."""

from __future__ import annotations

from typing import Sequence

import torch

from eegmamba.augment._random import chosen, where_rows
from eegmamba.channels import mirror_permutation


class HemisphereMirror:
    """``(x (B, C, T), y (B,))`` → mirrored copies on the windows chosen with probability ``p``.

    ``channels`` in model order (their mirrors must all be present); ``classes`` in model order;
    ``swap``: pairs of class names exchanged by the mirror.
    """

    def __init__(self, channels: Sequence[str], classes: Sequence[str],
                 swap: Sequence[tuple[str, str]], p: float) -> None:
        self.p = p
        self.perm = torch.tensor(mirror_permutation(channels), dtype=torch.long)
        cls_map = list(range(len(classes)))
        for a, b in swap:
            ia, ib = classes.index(a), classes.index(b)
            cls_map[ia], cls_map[ib] = ib, ia
        self.class_map = torch.tensor(cls_map, dtype=torch.long)

    def __call__(self, x: torch.Tensor, y: torch.Tensor,
                 g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        sel = chosen(self.p, x.shape[0], g, x.device)
        x = where_rows(sel, x[:, self.perm.to(x.device)], x)
        y = torch.where(sel, self.class_map.to(y.device)[y], y)
        return x, y
