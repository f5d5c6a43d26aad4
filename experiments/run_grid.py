"""Run the issue-17 nested selection and comparison (``experiments/nested.py``), resumable.

    python -m experiments.run_grid --grid experiments/issue17_grid.yaml --out runs/issue17
    python -m experiments.run_grid ... --out runs/issue17 --resume          # continue / skip done units
    python -m experiments.run_grid ... --folds 1 --stop-after choice         # fold 1's selection only
    python -m experiments.run_grid ... --with-executed --out runs/issue17_exec  # + runs 3/7/11 in training
    python -m experiments.run_grid ... --with-executed --choices-from runs/issue17 --out ...  # refits only
    python -m experiments.run_grid --report runs/issue17                     # report of what is on disk

Long runs: ``nice -n 10`` with ``OMP_NUM_THREADS=1``; the process may be stopped and continued
(SIGSTOP/SIGCONT) at any time, and a killed run resumes with ``--resume`` (finished units are
skipped, an interrupted EEGMamba fit continues from its last epoch).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from eegmamba.cli_common import run_cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.run_grid",
                                description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--grid", default="experiments/issue17_grid.yaml", help="the committed grid")
    p.add_argument("--out", help="run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--folds", nargs="+", type=int, help="outer folds to run (1-based; default all)")
    p.add_argument("--seeds", nargs="+", type=int, help="refit seeds (default: the grid's)")
    p.add_argument("--with-executed", action="store_true",
                   help="add the executed runs 3/7/11 of the training subjects to training")
    p.add_argument("--choices-from", metavar="RUN", help="run no selection: each fold's choice "
                   "(configuration, step counts) from RUN, a run of the same grid; refits and peers only")
    p.add_argument("--data", nargs="+", help="recordings (default: the grid's protocol.data)")
    p.add_argument("--stop-after", choices=("choice",), help="end each fold after its choice")
    p.add_argument("--report", metavar="RUN", help="only write RUN's report from its units")
    return p


def _main(argv: Sequence[str] | None) -> int:
    import torch
    from rich.console import Console

    from eegmamba._checks import UserInputError
    from experiments.nested import NestedConfig, NestedRun
    from experiments.nested_report import write_report

    a = build_parser().parse_args(argv)
    if a.report:
        print(write_report(a.report))
        return 0
    if not a.out:
        raise UserInputError("--out is required (the run folder), e.g. --out runs/issue17")
    torch.set_num_threads(1)
    cfg = NestedConfig(grid=a.grid, out=a.out, folds=tuple(a.folds) if a.folds else None,
                       seeds=tuple(a.seeds) if a.seeds else None, with_executed=a.with_executed,
                       data=tuple(a.data) if a.data else None, choices_from=a.choices_from)
    NestedRun(cfg, resume=a.resume, console=Console(), argv=argv).run(stop_after=a.stop_after)
    print(write_report(a.out))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv if argv is not None else sys.argv[1:], prog="run_grid")


if __name__ == "__main__":
    raise SystemExit(main())
