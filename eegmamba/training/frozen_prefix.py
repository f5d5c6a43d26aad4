"""What trains when a model is calibrated, and the cache of its frozen prefix.

``trainable(model, layers, n_last)`` sets ``requires_grad`` for ``head`` / ``last`` / ``all`` (see
``eegmamba.training.calibrate``) and names the module whose input can be cached: everything before
it is frozen and in eval mode, so its output for a window never changes. ``PrefixCache`` computes
that input once for every window and later runs the model from there: the frozen modules before
the cut are replaced by stubs for the duration, so the model's own ``forward`` runs the trained
part unchanged (no copy of the forward to keep in sync). ``cache_matches`` checks the cached path
against the model's own forward.
"""

from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn

from eegmamba._checks import UserInputError

def head_module(model: nn.Module) -> nn.Module:
    for name in ("classifier", "head"):
        if isinstance(getattr(model, name, None), nn.Module):
            return getattr(model, name)
    raise UserInputError(f"{type(model).__name__} has no classifier head to calibrate; use layers='all'")


def trainable(model: nn.Module, layers: str, n_last: int = 1) -> tuple[list[nn.Module], nn.Module | None]:
    """(modules that train, module whose input is cached or None), ``requires_grad`` set."""
    head = head_module(model)
    for p in model.parameters():
        p.requires_grad_(layers == "all")
    if layers == "all":
        return [model], None
    mods: list[nn.Module] = [head]
    cut = head
    if layers == "last":
        blocks = getattr(model, "blocks", None)
        if not isinstance(blocks, nn.ModuleList) or len(blocks) == 0:
            raise UserInputError(f"layers='last' needs an EEGMamba model (BiMamba blocks); "
                                 f"{type(model).__name__} has none: use 'head' or 'all'")
        n = len(blocks)
        first = max(0, n - n_last)
        mods += list(blocks[first:])
        moes = getattr(model, "moes", None)
        if isinstance(moes, nn.ModuleList) and len(moes):
            mods += list(moes[first:])
        cut = blocks[first]
    for m in mods:
        for p in m.parameters():
            p.requires_grad_(True)
    return mods, cut


def set_train_mode(model: nn.Module, train_mods: Sequence[nn.Module]) -> None:
    """Frozen parts in eval mode (BatchNorm statistics and dropout fixed), trained parts in train."""
    model.eval()
    for m in train_mods:
        m.train()


class PrefixCache:
    """The input of module ``cut`` for every window, computed once by the frozen model, and a way
    to run the model from there: the modules before ``cut`` are temporarily replaced by stubs that
    hand over the cached tensor, so the model's own ``forward`` runs the trained part unchanged."""

    def __init__(self, model: nn.Module, cut: nn.Module, task: str | None) -> None:
        self.model, self.cut, self.task = model, cut, task

    def capture(self, X: np.ndarray, device: torch.device, batch: int) -> torch.Tensor:
        captured: list[torch.Tensor] = []

        def hook(_mod, args):
            captured.append(args[0].detach())

        def keep_template(_mod, _args, out):
            self._template = out

        handles = [self.cut.register_forward_pre_hook(hook)]
        stem = _stem(self.model)
        if stem is not None:
            handles.append(stem.register_forward_hook(keep_template))
        try:
            with torch.no_grad():
                for i in range(0, len(X), batch):
                    self.model(torch.from_numpy(X[i:i + batch]).to(device), task=self.task)
        finally:
            for h in handles:
                h.remove()
        return torch.cat(captured)

    @contextlib.contextmanager
    def feeding(self, x_shape: tuple[int, ...]):
        """Within: ``run(z)`` gives the logits of the model for cached inputs ``z`` of ``cut``."""
        state = {"z": None}
        handle = self.cut.register_forward_pre_hook(lambda _m, args: (state["z"], *args[1:]))
        skipped = self._skip_prefix()
        try:
            def run(z: torch.Tensor) -> torch.Tensor:
                state["z"] = z
                dummy = torch.zeros((z.shape[0], *x_shape[1:]), device=z.device)
                return self.model(dummy, task=self.task)

            yield run
        finally:
            handle.remove()
            for parent, name, module in skipped:
                parent._modules[name] = module

    def _skip_prefix(self) -> list[tuple[nn.Module, str, nn.Module]]:
        """Replace the frozen modules that run before ``cut`` by cheap stubs (restored on exit).

        For the head, everything but the head runs before it; for a block, the ST-adaptive
        module (or EEGM2 encoder) and the earlier blocks (and MoE blocks). Their outputs are
        overwritten by the cached tensor at ``cut``'s input anyway; stubs only avoid the cost."""
        m = self.model
        swaps: list[tuple[nn.Module, str, nn.Module]] = []
        stem = _stem(m)
        if stem is not None:
            name = next(n for n, c in m.named_children() if c is stem)
            swaps.append((m, name, stem))
        blocks = getattr(m, "blocks", None)
        head = head_module(m)
        if self.cut is head:
            first = len(blocks) if isinstance(blocks, nn.ModuleList) else 0
        else:
            first = list(blocks).index(self.cut)
        if isinstance(blocks, nn.ModuleList):
            for i in range(first):
                swaps.append((blocks, str(i), blocks[i]))
            moes = getattr(m, "moes", None)
            if isinstance(moes, nn.ModuleList):
                for i in range(min(first, len(moes))):
                    swaps.append((moes, str(i), moes[i]))
        for parent, name, module in swaps:
            parent._modules[name] = _Template(self._template) if module is stem else _Identity()
        return swaps


def _stem(model: nn.Module) -> nn.Module | None:
    """The module that turns the input into tokens/features (EEGMamba: ``st_adaptive``; EEGM2:
    ``encoder``), or None."""
    for name in ("st_adaptive", "encoder"):
        if isinstance(getattr(model, name, None), nn.Module):
            return getattr(model, name)
    return None


class _Template(nn.Module):
    """Stands in for the frozen stem: returns its output for one earlier batch, batch-expanded
    (the values are never used: the cached tensor replaces them at ``cut``)."""

    def __init__(self, template) -> None:
        super().__init__()
        self.template = template

    def forward(self, x, *args, **kwargs):
        b = x.shape[0]
        if isinstance(self.template, tuple):
            return (_expand(self.template[0], b), *self.template[1:])
        return _expand(self.template, b)


def _expand(t: torch.Tensor, b: int) -> torch.Tensor:
    return t[:1].expand(b, *t.shape[1:])


class _Identity(nn.Module):
    """Returns its first argument (stands in for a frozen block whose output is overwritten)."""

    aux_loss = torch.zeros(())
    aux_parts = {"balance": torch.zeros(()), "z": torch.zeros(())}

    def forward(self, x, *args, **kwargs):
        return x


def cache_matches(cache: PrefixCache, model: nn.Module, X: np.ndarray, Z: torch.Tensor,
                   task: str | None, device: torch.device) -> bool:
    """The cached path gives the model's own logits on a few windows (eval mode)."""
    k = min(4, len(X))
    with torch.no_grad():
        model.eval()
        ref = model(torch.from_numpy(X[:k]).to(device), task=task)
        with cache.feeding(X.shape) as run:
            got = run(Z[:k])
    return bool(torch.allclose(ref, got, atol=1e-4, rtol=1e-4))
