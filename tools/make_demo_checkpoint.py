"""Train the bundled demo checkpoint: cross-subject EEGMamba for left vs right fist imagery.

The protocol is the cross-subject one of ``eegmamba-protocol`` (docs/results.md), the one that
generalises to a subject the model has never seen: single-task EEGMamba, profile ``motor_imagery``,
trained on EEGMMIDB runs 4, 8 and 12 of the TRAINING subjects (default S001-S018), early-stopped on
held-out training subjects (``cv.validation_split``, as in every cross-subject fold), paper
optimiser settings. The demo subject (default S019) is not in the training set; its feedback run
(``S019R12.edf``) is copied next to the checkpoint as the demo recording and scored offline on the
live window grid (the windows the live demo decides on). Writes::

    eegmamba/assets/demo/mi_checkpoint/   (model.safetensors + model.json, metadata as eegmamba-train)
    eegmamba/assets/demo/S019R12.edf      (byte-exact copy of the PhysioNet file)
    eegmamba/assets/demo/NOTICE.md        (attribution, ODC-By 1.0, training subjects, accuracies)

Usage: ``python tools/make_demo_checkpoint.py [--data ../shared/data/motor_imagery]
[--train-subjects S001-S018] [--demo-subject S019] [--epochs 20] [--patience 4] [--cv-results
runs/xs/results.json]`` (the defaults are the protocols' fixed settings, docs/results.md)
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

`mi_checkpoint/` is a single-task EEGMamba (`eegmamba_single`, profile `motor_imagery`: left vs right
fist imagery, 3 s windows, rest not a class) trained by `tools/make_demo_checkpoint.py` (derived from
ODC-By data, same attribution) with the cross-subject protocol on EEGMMIDB runs 4, 8 and 12 of
**{n_subjects} subjects: {train_subjects}** ({n_windows} windows; early stopping on held-out
training subjects {val_subjects}; best epoch {best_epoch} of {epochs_run}, at most {epochs}; {machine},
{seconds:.0f} s, seed {seed}).

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
    ap.add_argument("--epochs", type=int, default=20, help="max training epochs")
    ap.add_argument("--patience", type=int, default=4, help="early-stopping patience (epochs)")
    ap.add_argument("--batch-size", type=int, default=128, help="windows per step")
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
    from eegmamba.training.arms import ArmSettings, Windows, fit_arm
    from eegmamba.training.cli_protocol import subject_range
    from eegmamba.training.cv import validation_split
    from eegmamba.training.metrics import compute_metrics

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
    profile = load_profile("motor_imagery")
    ws = build_windows(files, profile)
    console.print(ws.summary_table(rich=True))
    sp = validation_split(np.arange(len(ws)), ws.subjects, ws.files, ws.t_start,
                          profile.window.length_s, 0.2, args.seed)
    console.print(sp.describe())
    settings = ArmSettings(eegmamba_epochs=args.epochs, eegmamba_patience=args.patience,
                           eegmamba_batch=args.batch_size)
    t0 = time.time()
    take = lambda idx: Windows(ws.X[idx], ws.X[idx], ws.y[idx])  # noqa: E731 (EEGMamba reads z only)
    fitted = fit_arm("eegmamba", profile, take(sp.train_idx), take(sp.val_idx), settings, args.seed,
                     console=console, label="demo")
    seconds = time.time() - t0
    demo_ws = build_windows([demo], profile, hop_s=profile.window.hop_s)
    m = compute_metrics(demo_ws.y, fitted.proba(Windows(demo_ws.X, demo_ws.X, demo_ws.y)))
    counts = dict(zip(*np.unique(ws.files, return_counts=True)))
    training = {
        "command": " ".join(["python tools/make_demo_checkpoint.py", *(argv or sys.argv[1:])]),
        "started": prov.now(), "machine": prov.machine(), "device": "cpu", "seed": args.seed,
        "versions": prov.versions(), "protocol": "cross-subject", "max_epochs": args.epochs,
        "patience": args.patience, "batch_size": args.batch_size, "seconds": round(seconds, 1),
        "best_epoch": fitted.info["best_epoch"], "history": fitted.info["history"],
        "validation": sp.describe(), "trained_on_subjects": sorted(set(ws.subjects.tolist())),
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
        n_windows=len(ws), val_subjects=", ".join(sp.held_out), best_epoch=fitted.info["best_epoch"],
        epochs_run=fitted.info["epochs_run"], epochs=args.epochs, machine=prov.machine(), seconds=seconds,
        seed=args.seed, n_demo=m["n"], demo_acc=m["acc"], demo_auroc=m["auroc"],
        demo_bacc=m["balanced_acc"], demo_kappa=m["kappa"], cv_line=cv_line, calib_line=calib_line,
        gd_lo=gd[0], gd_hi=gd[1]))
    console.print(f"written: {out / 'mi_checkpoint'}, {out / demo.name}, {out / 'NOTICE.md'}; demo run "
                  f"{demo.name}: acc {m['acc']:.3f}, auroc {m['auroc']:.3f} over {m['n']} windows "
                  f"({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(None))
