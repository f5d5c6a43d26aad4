"""``eegmamba-eval``: ACC, balanced ACC, AUROC, weighted F1 and κ of a checkpoint on other recordings
(thin command)."""

from __future__ import annotations

import argparse
import json
import math
from typing import Sequence

from eegmamba.cli_common import run_cli
from eegmamba.data.xdf import add_xdf_options, apply_xdf_options


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="eegmamba-eval", description="Evaluate a trained checkpoint on recordings read through "
        "the profile stored in the checkpoint (channels, rate and window are checked).")
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (model.json + model.safetensors)")
    p.add_argument("--data", required=True, nargs="+", help="recording files or folders")
    p.add_argument("--task", default=None, help="task of a multi-task checkpoint (default: its only task)")
    p.add_argument("--out", default=None, help="write the results as JSON to this file (default: none)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: auto")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=128, help="default: 128")
    add_xdf_options(p)
    return p


def _f(v: float) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _main(argv: Sequence[str] | None) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from eegmamba._checks import UserInputError
    from eegmamba.training.evaluate import evaluate_checkpoint
    from eegmamba.training.metrics import METRIC_NAMES, METRICS

    args = build_parser().parse_args(argv)
    apply_xdf_options(args)
    if args.batch_size < 1:
        raise UserInputError(f"--batch-size must be >= 1, got {args.batch_size}")
    res = evaluate_checkpoint(args.checkpoint, args.data, args.task, args.device, args.batch_size)
    console = Console()
    for w in res["warnings"]:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    table = Table("subject", "windows", *(METRIC_NAMES[k] for k in METRICS),
                  title=f"{res['task']}: {Path(args.checkpoint)}")
    for s, m in res["per_subject"].items():
        table.add_row(s, str(m["n"]), *(_f(m[k]) for k in METRICS))
    m = res["metrics"]
    table.add_row("all", str(m["n"]), *(_f(m[k]) for k in METRICS), style="bold")
    console.print(table)
    console.print("windows per class: " + ", ".join(f"{k} {v}" for k, v in res["windows"].items()) +
                  "; dropped: " + (", ".join(f"{k}={v}" for k, v in sorted(res["dropped"].items()))
                                   or "none"), highlight=False)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
        console.print(f"written: {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
