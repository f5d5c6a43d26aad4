"""``eegmamba-protocol``: the motor-imagery protocols (cross-subject, within-subject, calibrated)
with EEGMamba and its peers on the same windows (thin command; ``eegmamba.training.protocols``).

Examples (EEGMMIDB left/right fist imagery, 19 subjects)::

    eegmamba-protocol --protocol cross-subject --data ../shared/data/motor_imagery \\
        --subjects S001-S019 --runs 4 8 12 --out runs/xs
    eegmamba-protocol --protocol within-subject --data ../shared/data/motor_imagery \\
        --subjects S001-S019 --runs 4 8 12 --out runs/ws
    eegmamba-protocol --protocol calibrated --cross-subject-run runs/xs --within-subject-run runs/ws \\
        --out runs/cal

An ablation (``eegmamba.training.ablation``): EEGMamba arms that differ in one setting only, on the
same units, with the other ``--models`` as peers::

    eegmamba-protocol --protocol cross-subject --profile seizure --data ../shared/data/seizure \\
        --folds 2 --ablation norm --arms zscore recording --models eegmamba bandpower_lr \\
        --out runs/seizure_xs
"""

from __future__ import annotations

import argparse
import re
from typing import Sequence

from eegmamba.cli_common import run_cli

MI_ARMS = ("eegmamba", "eegnet", "csp_lda", "ts_lr", "mdm")


def subject_range(items: list[str]) -> tuple[str, ...]:
    """``["S001-S003", "S010"]`` → ``("S001", "S002", "S003", "S010")``."""
    out = []
    for item in items:
        m = re.fullmatch(r"([A-Za-z]+)(\d+)-\1?(\d+)", item)
        if m:
            prefix, a, b = m.group(1), int(m.group(2)), int(m.group(3))
            if b < a:
                raise ValueError(f"--subjects range {item!r} is empty")
            out += [f"{prefix}{i:0{len(m.group(2))}d}" for i in range(a, b + 1)]
        else:
            out.append(item)
    return tuple(out)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eegmamba-protocol", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--protocol", required=True, choices=("cross-subject", "within-subject", "calibrated",
                                                         "leave-one-recording-out"))
    p.add_argument("--profile", default="motor_imagery", help="task profile name or YAML path")
    p.add_argument("--data", nargs="+", help="recording files/folders (not for calibrated: it reads "
                   "the cross-subject run's)")
    p.add_argument("--out", required=True, help="output folder")
    from eegmamba.training.ablation import ABLATIONS
    from eegmamba.training.arms import ARMS

    p.add_argument("--models", nargs="+", default=None, choices=ARMS,
                   help=f"arms to run (bandpower_lr, yasa and gssc are the sleep/seizure peers); default "
                   f"{' '.join(MI_ARMS)}, with --ablation eegmamba only")
    p.add_argument("--subjects", nargs="+", help="subjects to use, e.g. S001-S019 (default: all found)")
    p.add_argument("--runs", nargs="+", type=int, help="runs to read (default: all)")
    p.add_argument("--train-runs", nargs="+", type=int, default=[4, 8],
                   help="within-subject / calibration runs")
    p.add_argument("--test-runs", nargs="+", type=int, default=[12], help="within-subject test runs")
    p.add_argument("--folds", type=int, default=5, help="cross-subject folds")
    p.add_argument("--epochs", type=int, default=100, help="EEGMamba max epochs")
    p.add_argument("--patience", type=int, default=10, help="EEGMamba early-stopping patience")
    p.add_argument("--batch-size", type=int, default=128, help="EEGMamba batch size")
    p.add_argument("--variant", default="eegmamba_single", help="EEGMamba variant")
    p.add_argument("--d-model", type=int, default=None,
                   help="EEGMamba width (default: the variant's; the issue-17 grid used 64)")
    p.add_argument("--eegnet-epochs", type=int, default=100, help="EEGNet max epochs")
    p.add_argument("--eegnet-patience", type=int, default=10, help="EEGNet early-stopping patience")
    p.add_argument("--cross-subject-run", help="calibrated: the cross-subject run folder")
    p.add_argument("--within-subject-run", help="calibrated: the within-subject run folder")
    p.add_argument("--recipe", metavar="FILE.yaml", help="training recipe of the neural arms "
                   "(eegmamba.training.engine.recipe; preset modern|paper + options); default modern; "
                   "'legacy': the pre-engine settings (EEGMamba paper AdamW 2e-4, EEGNet Adam 1e-3)")
    p.add_argument("--ablation", choices=sorted(ABLATIONS),
                   help="EEGMamba arms differing only in this setting, each in OUT/<arm> (resumed "
                   "if there): norm = the profile's window normalization, cls = the class-token "
                   "position; the other --models run once, into the first arm's folder")
    p.add_argument("--arms", nargs="+", metavar="ARM", help="with --ablation: the values to compare, "
                   "the first as the reference (" + "; ".join(
                       f"{k}: {', '.join(v)}" for k, v in ABLATIONS.items()) + ")")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue a run in --out (same options), "
                   "or add --models to it")
    return p


def _main(argv: Sequence[str] | None) -> int:
    from rich.console import Console

    from eegmamba._checks import UserInputError
    from eegmamba.training.arms import ArmSettings
    from eegmamba.training.engine.recipe import Recipe, load_recipe
    from eegmamba.training.protocols import ProtocolConfig, ProtocolRun

    a = build_parser().parse_args(argv)
    for name in ("folds", "epochs", "patience", "batch_size", "eegnet_epochs", "eegnet_patience"):
        if getattr(a, name) < 1:
            raise UserInputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(a, name)}")
    if a.d_model is not None and a.d_model < 8:
        raise UserInputError(f"--d-model must be >= 8, got {a.d_model}")
    settings = ArmSettings(eegmamba_epochs=a.epochs, eegmamba_patience=a.patience,
                           eegmamba_batch=a.batch_size, eegmamba_variant=a.variant,
                           eegmamba_d_model=a.d_model,
                           eegnet_epochs=a.eegnet_epochs, eegnet_patience=a.eegnet_patience,
                           recipe=None if a.recipe == "legacy" else
                           load_recipe(a.recipe) if a.recipe else Recipe())
    console = Console()
    if a.models is None:
        a.models = ["eegmamba"] if a.ablation else list(MI_ARMS)
    if (a.arms is None) != (a.ablation is None):
        raise UserInputError("--ablation and --arms go together (e.g. --ablation cls --arms start "
                             "middle end)")
    if a.ablation and a.protocol == "calibrated":
        raise UserInputError("--ablation runs the cross-subject, within-subject or "
                             "leave-one-recording-out protocol, not calibrated")
    if a.protocol == "calibrated":
        if not a.cross_subject_run or not a.within_subject_run:
            raise UserInputError("--protocol calibrated needs --cross-subject-run and --within-subject-run")
        from eegmamba.training.calibrated import CalibratedRun

        CalibratedRun(a.cross_subject_run, a.within_subject_run, a.out, tuple(a.models),
                      resume=a.resume, console=console, argv=argv).run()
        return 0
    if not a.data:
        raise UserInputError(f"--protocol {a.protocol} needs --data")
    cfg = ProtocolConfig(
        protocol=a.protocol, profile=a.profile, data=tuple(a.data), out=a.out, arms=tuple(a.models),
        subjects=subject_range(a.subjects) if a.subjects else None,
        runs=tuple(a.runs) if a.runs else None, train_runs=tuple(a.train_runs),
        test_runs=tuple(a.test_runs), folds=a.folds, seed=a.seed, settings=settings)
    if a.ablation:
        from eegmamba.training.ablation import check_arms, run_ablation

        arms = check_arms(a.ablation, [x for arg in a.arms for x in arg.split(",") if x])
        peers = tuple(m for m in a.models if m != "eegmamba")
        print(run_ablation(cfg, a.ablation, arms, peers, console=console, argv=argv))
        return 0
    ProtocolRun(cfg, resume=a.resume, console=console, argv=argv).run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv, prog="eegmamba-protocol")


if __name__ == "__main__":
    raise SystemExit(main())
