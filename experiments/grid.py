"""The issue-17 grid (``experiments/issue17_grid.yaml``): load it and validate every configuration
before anything trains, so a typo fails in one line instead of after hours of runs.

``load_grid(path)`` returns one :class:`GridConfig` per configuration and per peer: its profile with
the configuration's sections merged in (validated by :mod:`eegmamba.profiles`), the model (a
registry variant and its config overrides, validated by building the config; or a peer arm name),
and the recipe mapping (validated by the training engine's ``Recipe`` where it is installed).

    python experiments/grid.py experiments/issue17_grid.yaml     # prints the grid, exit 2 if invalid
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

if __package__ in (None, ""):  # run as a script without install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eegmamba._checks import UserInputError  # noqa: E402
from eegmamba.model.config import TaskSpec  # noqa: E402
from eegmamba.profile_recipe import AugmentationSpec  # noqa: E402
from eegmamba.profiles import Profile, load_profile  # noqa: E402
from eegmamba.registry import list_models, variant_config  # noqa: E402

MAX_CONFIGS = 6
PEER_ARMS = ("eegnet", "csp_lda", "ts_lr", "mdm")


@dataclass(frozen=True)
class GridConfig:
    """One configuration: ``model`` is a registry variant (``overrides`` its config options) or a
    peer arm (``options`` its estimator options); ``recipe`` the engine recipe mapping."""

    id: str
    why: str
    profile: Profile
    model: str
    overrides: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    recipe: dict = field(default_factory=dict)
    peer: bool = False

    def task(self) -> TaskSpec:
        p = self.profile
        return TaskSpec(p.task, p.n_channels, p.window_samples, len(p.classes), p.sfreq,
                        p.channels.names, p.classes)


def _recipe(d: Any, where: str) -> dict:
    d = dict(d or {})
    try:
        from eegmamba.training.engine.recipe import PRESETS, Recipe
    except ImportError:  # the engine is on another branch: checked when it lands
        return d
    preset = d.pop("preset", "modern")
    if preset not in PRESETS:
        raise UserInputError(f"{where}.recipe.preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    Recipe.from_dict(d, f"{where}.recipe")
    return {"preset": preset, **d}


def _one(c: Any, base: Profile, where: str, peer: bool) -> GridConfig:
    if not isinstance(c, dict) or "id" not in c or "model" not in c:
        raise UserInputError(f"{where}: needs at least id and model")
    where = f"{where}[{c['id']}]"
    profile = base.with_overrides(c.get("profile") or {})
    model = c["model"]
    overrides = {}
    if isinstance(model, dict):
        overrides = {k: v for k, v in model.items() if k != "variant"}
        model = model.get("variant")
    if model in PEER_ARMS:
        if not peer:
            raise UserInputError(f"{where}: {model} is a peer; list it under peers")
    elif model in list_models():
        cfg = GridConfig(c["id"], c.get("why", ""), profile, model)
        try:
            variant_config(model, tasks=[cfg.task()], **overrides)
        except (TypeError, ValueError) as exc:
            raise UserInputError(f"{where}.model: {exc}") from None
    else:
        raise UserInputError(f"{where}.model: unknown {model!r} (a registry variant or one of "
                             f"{', '.join(PEER_ARMS)})")
    if not peer and not str(c.get("why", "")).strip():
        raise UserInputError(f"{where}.why: say why this configuration is in the grid")
    return GridConfig(c["id"], str(c.get("why", "")), profile, model, overrides,
                      dict(c.get("options") or {}), _recipe(c.get("recipe"), where), peer)


def load_grid(path: str | Path) -> list[GridConfig]:
    """Validated configurations then peers of the grid file (module docstring)."""
    path = Path(path)
    d = yaml.safe_load(path.read_text())
    # the grid's own sections are the only augmentation: the shipped motor_imagery.yaml now carries
    # the chosen strong set, which a configuration without augmentation (c6) must not inherit
    base = dataclasses.replace(load_profile(d.get("profile", "motor_imagery")),
                               augmentation=AugmentationSpec())
    configs = [_one(c, base, f"{path.name}: configurations", False) for c in d["configurations"]]
    if not 1 <= len(configs) <= MAX_CONFIGS:
        raise UserInputError(f"{path.name}: {len(configs)} configurations; the grid allows 1 to "
                             f"{MAX_CONFIGS}")
    peers = [_one(c, base, f"{path.name}: peers", True) for c in d.get("peers") or []]
    ids = [c.id for c in configs + peers]
    if len(set(ids)) != len(ids):
        raise UserInputError(f"{path.name}: duplicate configuration ids {ids}")
    if "protocol" not in d:
        raise UserInputError(f"{path.name}: protocol is required (declared before any run)")
    return configs + peers


def main(argv: list[str] | None = None) -> int:
    from eegmamba.cli_common import run_cli

    def _run(args: list[str]) -> int:
        path = args[0] if args else str(Path(__file__).with_name("issue17_grid.yaml"))
        for c in load_grid(path):
            a = c.profile.alignment.method
            aug = "aug" if c.profile.augmentation.enabled else "no aug"
            print(f"{c.id:28s} {c.model:18s} {a:10s} {aug:7s} {c.overrides or c.options}")
        return 0

    return run_cli(_run, argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
