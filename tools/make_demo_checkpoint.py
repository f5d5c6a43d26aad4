"""Train the bundled demo checkpoint: cross-subject EEGMamba for left vs right fist imagery.

The configuration is the one the issue-17 nested selection chose by validation on training subjects
(``experiments/issue17_grid.yaml``, ``runs/issue17``): ``--config`` names a grid configuration
(tokenizer variant, width, profile with its augmentation and alignment, engine recipe) and
``--steps`` the optimiser steps at which it peaked on the validation subjects. As in the grid's
refit, it trains on ALL windows of EEGMMIDB runs 4, 8 and 12 of the TRAINING subjects (default
S001-S018) for exactly that many steps (no early stopping, no test subject read). The demo subject
(default S019) is not in the training set; its feedback run
(``S019R12.edf``) is copied next to the checkpoint as the demo recording and scored offline on the
live window grid (the windows the live demo decides on). Writes::

    eegmamba/assets/demo/mi_checkpoint/   (model.safetensors + model.json, metadata as eegmamba-train)
    eegmamba/assets/demo/S019R12.edf      (byte-exact copy of the PhysioNet file)
    eegmamba/assets/demo/NOTICE.md        (attribution, ODC-By 1.0, training subjects, accuracies)

Usage: ``python tools/make_demo_checkpoint.py [--data ../shared/data/motor_imagery]
[--train-subjects S001-S018] [--demo-subject S019] [--grid experiments/issue17_grid.yaml]
[--config c5_filterbank_strong_noea] [--steps 646] [--seed 0]`` (the defaults: fold 1's choice,
``runs/issue17/units/choice/fold_1.json``; docs/results.md)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # experiments/ (the grid) is not part of the installed package
ASSETS = REPO / "eegmamba" / "assets" / "demo"
DEMO_RUN = 12
TRAIN_RUNS = (4, 8, 12)
CALIB_RUNS = (4, 8)  # the demo subject's runs replayed by ``eegmamba-live --demo --calibrate``

NOTICE = """\
# Demo assets: attribution and license

The `.edf` files here are unmodified recordings of the PhysioNet **EEG Motor Movement/Imagery
Dataset** (EEGMMIDB) 1.0.0 (160 Hz, 64 channels). `{demo_file}` is subject {demo_subject}, run
{demo_run} (imagined left fist / right fist), the recording `eegmamba-live --demo` replays.
{calib_line}They are distributed under the **Open Data Commons Attribution License v1.0 (ODC-By 1.0)**,
https://opendatacommons.org/licenses/by/1-0/. Please cite:

- Schalk G., McFarland D.J., Hinterberger T., Birbaumer N., Wolpaw J.R. BCI2000: A General-Purpose
  Brain-Computer Interface (BCI) System. IEEE Transactions on Biomedical Engineering 51(6):1034-1043, 2004.
- Goldberger A.L. et al. PhysioBank, PhysioToolkit, and PhysioNet: Components of a New Research
  Resource for Complex Physiologic Signals. Circulation 101(23):e215-e220, 2000.

`mi_checkpoint/` is a single-task EEGMamba (`{variant}`, {n_params:,} parameters, profile
`motor_imagery`: left vs right fist imagery, 3 s windows, rest not a class) trained by
`tools/make_demo_checkpoint.py` (derived from ODC-By data, same attribution) on EEGMMIDB runs 4, 8
and 12 of **{n_subjects} subjects: {train_subjects}** ({n_windows} windows, the profile's
augmentation on the fly) with grid configuration `{config}` of `{grid}` for {steps} optimiser steps
(chosen by validation on training subjects, `runs/issue17`; {machine}, {seconds:.0f} s, seed {seed}).

**Subject {demo_subject} is not in the training set**: the demo classifies a person the model has
never seen. On `{demo_file}` the checkpoint scores, offline on the live window grid (3 s windows
every 0.5 s, {n_demo} windows wholly inside a cue): accuracy {demo_acc:.3f}, balanced accuracy
{demo_bacc:.3f}, ROC-AUC {demo_auroc:.3f}, Cohen's κ {demo_kappa:.3f}. The live demo scores the same
windows with the same rule, so the accuracy its dashboard shows for one pass over the run is this
figure (`tests/realtime/test_demo_accuracy.py`). Rest periods are shown live but not scored (rest is
not a class of this profile).

{cv_line}
The preprocessing is causal (no look-ahead); resampling the 160 Hz stream to 200 Hz delays it by
{gd_lo:.1f}–{gd_hi:.1f} ms over 1–40 Hz (recorded in the checkpoint metadata,
`preprocessing.resampler`).
"""


def _main(argv: Sequence[str] | None) -> int:
    ap = argparse.ArgumentParser(prog="make_demo_checkpoint", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "motor_imagery"),
                    help="folder with the EEGMMIDB .edf runs")
    ap.add_argument("--out", default=str(ASSETS), help="demo assets folder")
    ap.add_argument("--train-subjects", nargs="+", default=["S001-S018"], help="training subjects")
    ap.add_argument("--demo-subject", default="S019", help="held-out subject whose run 12 is shipped")
    ap.add_argument("--grid", default=str(REPO / "experiments" / "issue17_grid.yaml"),
                    help="the committed grid the configuration comes from")
    ap.add_argument("--config", default="c5_filterbank_strong_noea",
                    help="grid configuration (runs/issue17: chosen on fold 1's validation subjects)")
    ap.add_argument("--steps", type=int, default=646,
                    help="optimiser steps (where the configuration peaked on validation subjects)")
    ap.add_argument("--seed", type=int, default=0, help="random seed")
    ap.add_argument("--cv-results", help="results.json of the cross-subject protocol run, for the "
                    "accuracy the CV predicts (written into NOTICE.md)")
    args = ap.parse_args(argv)

    import numpy as np
    from rich.console import Console

    from eegmamba.checkpoint import save_checkpoint
    from eegmamba.data.dataset import build_windows
    from eegmamba.data.recording import subject_and_run
    from eegmamba.profiles import load_profile
    from eegmamba.training import provenance as prov
    from eegmamba.training.arms import Windows, fit_arm
    from eegmamba.training.cli_protocol import subject_range
    from eegmamba.training.metrics import compute_metrics
    from experiments.grid import load_grid
    from experiments.nested import settings_for

    console = Console()
    data, out = Path(args.data), Path(args.out)
    train_subjects = subject_range(args.train_subjects)
    if args.demo_subject in train_subjects:
        raise SystemExit(f"make_demo_checkpoint: the demo subject {args.demo_subject} must not be a "
                         "training subject")
    demo = data / f"{args.demo_subject}R{DEMO_RUN:02d}.edf"
    if not demo.is_file():
        raise SystemExit(f"make_demo_checkpoint: {demo} not found")
    files = sorted(str(f) for f in data.glob("*.edf")
                   if subject_and_run(f)[0] in train_subjects and subject_and_run(f)[1] in TRAIN_RUNS)
    grid = {c.id: c for c in load_grid(args.grid)}
    if args.config not in grid or grid[args.config].peer:
        raise SystemExit(f"make_demo_checkpoint: no EEGMamba configuration {args.config!r} in "
                         f"{args.grid}; it has {', '.join(k for k, c in grid.items() if not c.peer)}")
    c = grid[args.config]
    profile = c.profile
    if profile != load_profile("motor_imagery"):  # the live demo runs the stored profile = the YAML
        raise SystemExit(f"make_demo_checkpoint: {args.config}'s profile differs from "
                         "motor_imagery.yaml; put its augmentation/alignment in the YAML first")
    ws = build_windows(files, profile)
    console.print(ws.summary_table(rich=True))
    settings = settings_for(c, max_steps=args.steps)
    t0 = time.time()
    fitted = fit_arm("eegmamba", profile, Windows(ws.X, ws.X, ws.y, ws.files, ws.t_start), None,
                     settings, args.seed, console=console, label="demo",
                     model_overrides=c.overrides or None)
    seconds = time.time() - t0
    demo_ws = build_windows([demo], profile, hop_s=profile.window.hop_s)
    m = compute_metrics(demo_ws.y, fitted.proba(Windows(demo_ws.X, demo_ws.X, demo_ws.y)))
    counts = dict(zip(*np.unique(ws.files, return_counts=True)))
    training = {
        "command": " ".join(["python tools/make_demo_checkpoint.py", *(argv or sys.argv[1:])]),
        "started": prov.now(), "machine": prov.machine(), "device": "cpu", "seed": args.seed,
        "versions": prov.versions(), "protocol": "cross-subject refit", "grid": args.grid,
        "config": args.config, "variant": c.model, "model_overrides": c.overrides,
        "recipe": settings.recipe.to_dict(), "steps": args.steps, "seconds": round(seconds, 1),
        "fit": fitted.info.get("fit"), "trained_on_subjects": sorted(set(ws.subjects.tolist())),
        "files": prov.file_records(files, {str(k): int(v) for k, v in counts.items()}, {}),
        "demo_recording": demo.name, "demo_metrics": m,
    }
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "mi_checkpoint", fitted.model, prov.checkpoint_metadata([profile], training))
    shutil.copyfile(demo, out / demo.name)
    calib = [data / f"{args.demo_subject}R{r:02d}.edf" for r in CALIB_RUNS]
    calib_line = ""
    if all(f.is_file() for f in calib):
        for f in calib:
            shutil.copyfile(f, out / f.name)
        calib_line = (f"{' and '.join(f'`{f.name}`' for f in calib)} are the same subject's runs "
                      f"{' and '.join(map(str, CALIB_RUNS))} (the same task): the calibration runs "
                      f"`eegmamba-live --demo --calibrate` replays before `{demo.name}`. ")
    gd = prov.checkpoint_metadata([profile], {})["preprocessing"]["resampler"][
        "group_delay_ms_by_input_rate"]["160"]
    cv_line = ""
    if args.cv_results:
        res = json.loads(Path(args.cv_results).read_text())
        s = res["arms"]["eegmamba"]["summary"]
        cv_line = (f"The cross-subject CV of the same training recipe (`{args.cv_results}`, "
                   f"{len(res['arms']['eegmamba']['units'])} subject-grouped folds over S001-S019, "
                   f"docs/results.md) predicts for a new subject: accuracy {s['acc']['mean']:.3f} ± "
                   f"{s['acc']['std']:.3f}, ROC-AUC {s['auroc']['mean']:.3f} ± {s['auroc']['std']:.3f} "
                   f"(mean ± std over folds).\n")
    (out / "NOTICE.md").write_text(NOTICE.format(
        demo_file=demo.name, demo_subject=args.demo_subject, demo_run=DEMO_RUN,
        n_subjects=len(set(ws.subjects.tolist())), train_subjects=", ".join(sorted(set(ws.subjects.tolist()))),
        n_windows=len(ws), variant=c.model, n_params=sum(p.numel() for p in fitted.model.parameters()),
        config=args.config, grid=Path(args.grid).name, steps=args.steps, machine=prov.machine(), seconds=seconds,
        seed=args.seed, n_demo=m["n"], demo_acc=m["acc"], demo_auroc=m["auroc"],
        demo_bacc=m["balanced_acc"], demo_kappa=m["kappa"], cv_line=cv_line, calib_line=calib_line,
        gd_lo=gd[0], gd_hi=gd[1]))
    console.print(f"written: {out / 'mi_checkpoint'}, {out / demo.name}, {out / 'NOTICE.md'}; demo run "
                  f"{demo.name}: acc {m['acc']:.3f}, auroc {m['auroc']:.3f} over {m['n']} windows "
                  f"({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(None))
