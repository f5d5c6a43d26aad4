"""``eegmamba-train``: subject-grouped cross-validation of EEGMamba (or any registered model, ``--model
NAME``; several compared on the same folds, ``--model A,B``) + classical baseline, a final model.

Thin command: parse, build a ``RunConfig``, call ``eegmamba.training.experiment.Experiment``. Runs under
``torchrun --nproc_per_node N`` as DDP. See ``docs/results.md`` for real runs.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from eegmamba.cli_common import run_cli
from eegmamba.data.xdf import add_xdf_options, apply_xdf_options

# epochs, batch_size, patience, seed: None = the recipe's (file, else the default Recipe: 100, 64,
# 10, 0), so a --recipe file is not overridden by defaults; given options win over the file
DEFAULTS = {"folds": 5, "epochs": None, "batch_size": None, "patience": None, "device": "auto",
            "variant": None, "model": None, "seed": None, "out": None, "final": True, "baseline": True,
            "pretrained": None, "freeze": "full", "unfreeze_last": 2, "recipe": None}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="eegmamba-train", description="Cross-validate EEGMamba (or another registered model: "
        "--model) on EEG recordings (subject-grouped folds), compare with a classical baseline on the "
        "same folds, and train a final model that eegmamba-live and eegmamba-eval serve.",
        argument_default=None)
    p.add_argument("--profile", action="append", help="task profile name or YAML path; repeat with "
                   "--data for multi-task training (default: from --run)")
    p.add_argument("--data", action="append", nargs="+", help="recording files/folders of the "
                   "preceding --profile")
    p.add_argument("--out", help="output folder (required unless the run file sets it)")
    p.add_argument("--run", help="YAML run file (see eegmamba.training.runfile); options given here win")
    p.add_argument("--folds", type=int, help=f"cross-validation folds (default {DEFAULTS['folds']})")
    p.add_argument("--epochs", type=int, help="max epochs per fold (default: the recipe's, 100)")
    p.add_argument("--batch-size", dest="batch_size", type=int,
                   help="windows per step (default: the recipe's, 64; clipped to the training set)")
    p.add_argument("--recipe", metavar="FILE.yaml", help="training recipe (eegmamba.training.engine."
                   "recipe: preset modern|paper and any of its options, e.g. lr, weight_decay, "
                   "label_smoothing, ema, evals_per_epoch, select, balance); the options here win")
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs on the validation "
                   "selection metric (default: the recipe's, 10)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default auto")
    p.add_argument("--model", metavar="NAME[,NAME...]", help="registered model to train: an EEGMamba "
                   "variant (eegmamba_single, eegmamba_fb, ...), eegnet or eegconformer (default "
                   "eegmamba_single for one task, eegmamba_multi for several). Several, comma-"
                   "separated: each is cross-validated on the same folds, the report says which won on "
                   "the recipe's selection metric, and the final model is the winner")
    p.add_argument("--variant", help="the same as --model with one name (kept for old commands)")
    p.add_argument("--pretrained", metavar="DIR", help="fine-tune an EEGM2 classifier whose encoder "
                   "comes from this eegmamba-pretrain output folder (one task only)")
    p.add_argument("--freeze", choices=("frozen", "partial", "full"), help="with --pretrained: which "
                   "encoder stages train (default full)")
    p.add_argument("--unfreeze-last", dest="unfreeze_last", type=int, help="with --freeze partial: "
                   "the last K encoder stages train (default 2)")
    p.add_argument("--seed", type=int, help="random seed (default: the recipe's, 0)")
    p.add_argument("--no-final", dest="final", action="store_false", default=None,
                   help="skip the final model trained on all subjects")
    p.add_argument("--no-baseline", dest="baseline", action="store_false", default=None,
                   help="skip the classical baseline")
    p.add_argument("--resume", action="store_true", default=False,
                   help="continue an interrupted run in --out (same options)")
    add_xdf_options(p)
    return p


def _main(argv: Sequence[str] | None) -> int:
    from rich.console import Console

    from eegmamba._checks import UserInputError
    from eegmamba.training.experiment import Experiment, RunConfig, TaskInput
    from eegmamba.training.runfile import load_run_file
    from eegmamba.training.engine.recipe import Recipe, load_recipe

    args = build_parser().parse_args(argv)
    apply_xdf_options(args)
    opts = dict(DEFAULTS)
    tasks = []
    if args.run:
        rf = load_run_file(args.run)
        tasks = rf.pop("tasks")
        opts.update(rf)
    opts.update({k: v for k, v in vars(args).items() if k in DEFAULTS and v is not None})
    if args.profile or args.data:
        profiles, data = args.profile or [], args.data or []
        if len(profiles) != len(data):
            raise UserInputError(f"give one --data per --profile (got {len(profiles)} --profile, "
                                 f"{len(data)} --data)")
        tasks = list(zip(profiles, data))
    if not tasks:
        raise UserInputError("nothing to train: give --profile P --data PATH (or --run FILE.yaml)")
    if not opts["out"]:
        raise UserInputError("--out is required (the output folder)")
    if args.model and args.variant:
        raise UserInputError("give --model or --variant, not both (--variant is --model with one name)")
    models = tuple(m.strip() for m in (opts["model"] or "").split(",") if m.strip())
    if opts["model"] is not None and not models:
        raise UserInputError(f"--model expects NAME or NAME,NAME,..., got {opts['model']!r}")
    variant = models[0] if len(models) == 1 else opts["variant"]  # one model: recorded as before
    sizes = {k: opts[k] for k in ("epochs", "patience", "seed", "batch_size") if opts[k] is not None}
    train = load_recipe(opts["recipe"], **sizes) if opts["recipe"] else Recipe(**sizes)
    cfg = RunConfig(tasks=tuple(TaskInput(p, tuple(d)) for p, d in tasks), out=opts["out"],
                    folds=opts["folds"], variant=variant, device=opts["device"], train=train,
                    final=opts["final"], baseline=opts["baseline"], pretrained=opts["pretrained"],
                    freeze=opts["freeze"], unfreeze_last=opts["unfreeze_last"],
                    models=models if len(models) > 1 else ())
    if cfg.pretrained and (args.variant or args.model):
        raise UserInputError("--pretrained fine-tunes an EEGM2 classifier; drop --model/--variant")
    console = Console(stderr=False)
    try:
        Experiment(cfg, resume=args.resume, console=console, argv=argv).run()
    except KeyboardInterrupt:
        console.print(f"interrupted: training state saved in {cfg.out}; continue with the same command "
                      "and --resume")
        return 130
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
