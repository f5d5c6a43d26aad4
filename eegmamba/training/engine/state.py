"""What a resumable :class:`~eegmamba.training.engine.loop.Engine` run saves (``state_path``, at
every epoch's end and on a stop request) and how it resumes: the weights, optimiser, EMA, counters,
history, best weights and the torch RNG, refused when written with another recipe; a state of the
pre-engine ``Trainer`` resumes too (its weights, counters and history; its optimiser moments where
the parameter groups still match)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from eegmamba._checks import UserInputError


def engine_state(eng) -> dict:
    """The state of ``eng`` (an ``Engine``) as ``torch.save`` writes it."""
    r = eng.result
    return {"engine": 1, "model": eng.core.state_dict(), "optimizer": eng.opt.state_dict(),
            "ema": None if eng.ema is None else eng.ema.state_dict(),
            "epoch": eng.epoch, "step": eng.step, "global_step": eng.global_step,
            "partial": dict(eng.partial), "skipped": eng.skipped, "history": r.history,
            "evals": r.evals, "best_epoch": r.best_epoch, "best_step": r.best_step,
            "best_score": r.best_score, "best_loss": r.best_loss, "best_state": r.best_state,
            "last_eval": eng.last_eval, "recipe": eng.recipe.to_dict(),
            "rng": torch.get_rng_state()}


def load_engine_state(eng, path: str | Path) -> None:
    """Continue ``eng`` from the state saved at ``path`` (module docstring); a UserInputError
    names the recipe fields that differ."""
    s = torch.load(path, map_location="cpu", weights_only=True)
    eng.core.load_state_dict(s["model"])
    if "engine" not in s:
        return _load_legacy(eng, s)
    diff = sorted(k for k, v in eng.recipe.to_dict().items() if s["recipe"].get(k) != v)
    if diff:
        raise UserInputError(f"{path} was written with another training recipe ({', '.join(diff)} "
                             "differ); resume with the same recipe or start a new run")
    eng.opt.load_state_dict(s["optimizer"])
    if eng.ema is not None and s.get("ema"):
        eng.ema.load_state_dict(s["ema"])
    eng.epoch, eng.step, eng.global_step = s["epoch"], s["step"], s["global_step"]
    eng.partial, eng.skipped = dict(s["partial"]), s["skipped"]
    eng.last_eval = dict(s["last_eval"])
    r = eng.result
    r.history, r.evals = list(s["history"]), list(s["evals"])
    r.best_epoch, r.best_step, r.best_score = s["best_epoch"], s["best_step"], s["best_score"]
    r.best_state, r.best_loss = s["best_state"], s["best_loss"]
    torch.set_rng_state(s["rng"])


def _load_legacy(eng, s: dict) -> None:
    """A pre-engine ``Trainer`` state (no ``engine`` key)."""
    if len(s["optimizer"]["param_groups"]) == len(eng.opt.param_groups):
        eng.opt.load_state_dict(s["optimizer"])
    else:
        eng.notes.append("resumed a pre-engine state: optimiser moments restarted")
    eng.epoch, eng.step = s["epoch"], s["step"]
    eng.global_step = eng.epoch * eng.steps_per_epoch + eng.step
    p = list(s["partial"])
    if len(p) == 2:
        p = [p[0], p[0], 0.0, 0.0, 0.0, p[1]]
    names = ("loss", "ce", "aux", "aux_balance", "aux_z")
    eng.partial = {**{k: v for k, v in zip(names, p[:-1])}, "n": p[-1]}
    r = eng.result
    r.history, r.best_epoch, r.best_state = list(s["history"]), s["best_epoch"], s["best_state"]
    r.best_step = r.best_epoch * eng.steps_per_epoch
    r.best_score = s["best_loss"] if eng.recipe.select == "val_loss" and math.isfinite(
        s["best_loss"]) else None
    torch.set_rng_state(s["rng"])
