"""Train the bundled demo checkpoint: single-task EEGMamba on the shared motor-imagery recordings.

Trains ``eegmamba_single`` with the ``motor_imagery`` profile on every shared EEGMMIDB run that has
imagery labels EXCEPT ``S001R08.edf``, which is held out and copied next to the checkpoint as the demo
recording, so the live demo never replays a file the model was trained on. Writes::

    eegmamba/assets/demo/mi_checkpoint/   (model.safetensors + model.json, metadata as eegmamba-train)
    eegmamba/assets/demo/S001R08.edf      (byte-exact copy of the PhysioNet file)
    eegmamba/assets/demo/NOTICE.md        (attribution, ODC-By 1.0, which runs trained the checkpoint)

The number of epochs is fixed (no validation split: every labelled window trains the model); the
paper's optimiser settings are used (AdamW, lr 2e-4, weight decay 1e-6).

Usage: ``python tools/make_demo_checkpoint.py [--data ../shared/data/motor_imagery] [--epochs 5]
[--batch-size 32] [--seed 0]``
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "eegmamba" / "assets" / "demo"
HELD_OUT = "S001R08.edf"

NOTICE = """\
# Demo assets: attribution and license

`S001R08.edf` is an unmodified recording of the PhysioNet **EEG Motor Movement/Imagery Dataset**
(EEGMMIDB) 1.0.0, subject 1, run 8 (imagined left fist / right fist), 160 Hz, 64 channels.
It is distributed under the **Open Data Commons Attribution License v1.0 (ODC-By 1.0)**,
https://opendatacommons.org/licenses/by/1-0/. Please cite:

- Schalk G., McFarland D.J., Hinterberger T., Birbaumer N., Wolpaw J.R. BCI2000: A General-Purpose
  Brain-Computer Interface (BCI) System. IEEE Transactions on Biomedical Engineering 51(6):1034-1043, 2004.
- Goldberger A.L. et al. PhysioBank, PhysioToolkit, and PhysioNet: Components of a New Research
  Resource for Complex Physiologic Signals. Circulation 101(23):e215-e220, 2000.

`mi_checkpoint/` is a single-task EEGMamba (`eegmamba_single`, profile `motor_imagery`) trained by
`tools/make_demo_checkpoint.py` on these EEGMMIDB runs (derived from ODC-By data, same attribution):

{trained_on}

**`S001R08.edf` was held out: the checkpoint never saw it.** Training used {n_windows} labelled
windows for {epochs} epoch(s) on {machine}, seed {seed}. Note that subject S001 is in the training
set (other runs), so a demo on S001R08 is a within-subject, held-out-run result, not a
cross-subject one; and with this little data and training the checkpoint is a demo of the pipeline,
not a validated classifier (see `docs/results.md` for cross-validated numbers).
"""


def _main(argv: Sequence[str] | None) -> int:
    ap = argparse.ArgumentParser(prog="make_demo_checkpoint", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "motor_imagery"),
                    help="folder with the EEGMMIDB .edf runs")
    ap.add_argument("--out", default=str(ASSETS), help="demo assets folder")
    ap.add_argument("--epochs", type=int, default=5, help="training epochs")
    ap.add_argument("--batch-size", type=int, default=32, help="windows per step")
    ap.add_argument("--seed", type=int, default=0, help="random seed")
    args = ap.parse_args(argv)

    import numpy as np
    from rich.console import Console

    from eegmamba import create_model
    from eegmamba.checkpoint import save_checkpoint
    from eegmamba.data.dataset import build_windows
    from eegmamba.profiles import load_profile
    from eegmamba.training import provenance as prov
    from eegmamba.training.experiment import _task_spec
    from eegmamba.training.trainer import TaskData, TrainConfig, Trainer, resolve_device, seed_everything

    console = Console()
    data, out = Path(args.data), Path(args.out)
    held = data / HELD_OUT
    if not held.is_file():
        raise SystemExit(f"make_demo_checkpoint: {held} not found")
    profile = load_profile("motor_imagery")
    files = sorted(f for f in data.glob("*.edf") if f.name != HELD_OUT)
    ws = build_windows(files, profile)
    used = sorted(set(ws.files.tolist()))
    console.print(ws.summary_table(rich=True))
    console.print(f"training on {len(ws)} windows from {len(used)} file(s); held out: {HELD_OUT}")
    seed_everything(args.seed)
    model = create_model("eegmamba_single", tasks=[_task_spec(profile)])
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    t0 = time.time()
    fit = Trainer(model, {profile.name: TaskData(ws.X, ws.y)}, None, cfg, resolve_device("cpu"),
                  console=console, label="demo").fit()
    model.load_state_dict(fit.best_state)
    counts = dict(zip(*np.unique(ws.files, return_counts=True)))
    training = {
        "command": " ".join(["python tools/make_demo_checkpoint.py", *(argv or sys.argv[1:])]),
        "started": prov.now(), "machine": prov.machine(), "device": "cpu", "seed": args.seed,
        "versions": prov.versions(), "epochs": args.epochs, "batch_size": args.batch_size,
        "seconds": round(time.time() - t0, 1), "history": fit.history,
        "files": prov.file_records([str(f) for f in files], {str(k): v for k, v in counts.items()},
                                   dict(ws.skipped_files)),
        "held_out": HELD_OUT, "trained_on_subjects": sorted(set(ws.subjects.tolist())),
    }
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "mi_checkpoint", model, prov.checkpoint_metadata([profile], training))
    shutil.copyfile(held, out / HELD_OUT)
    trained_on = "\n".join(f"- `{Path(f).name}` ({counts[f]} windows)" for f in used)
    skipped = [Path(f).name for f, _ in ws.skipped_files]
    if skipped:
        trained_on += ("\n\nRead but not used (no imagery labels: real-movement runs): "
                       + ", ".join(f"`{s}`" for s in skipped) + ".")
    (out / "NOTICE.md").write_text(NOTICE.format(trained_on=trained_on, n_windows=len(ws),
                                                 epochs=args.epochs, machine=prov.machine(),
                                                 seed=args.seed))
    console.print(f"written: {out / 'mi_checkpoint'}, {out / HELD_OUT}, {out / 'NOTICE.md'} "
                  f"({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(None))
