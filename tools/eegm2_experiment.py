"""Pretrained vs from-scratch EEGM2 encoder, same folds, head, steps and seeds (not a CI test).

(a) seizure: CHB-MIT chb01 ictal vs pre-ictal 10-s crops, leave-one-seizure-out (one seizure's
    ictal + pre-ictal pair per fold); pretraining on the chb02 crops and the two chb01_03 41-s crops,
    the latter left out for the chb01_03 fold (they overlap its test crops).
(b) motor imagery: pretraining on S001's executed-movement runs 3, 5, 7, 9, 11, 13 (labels ignored);
    fine-tuning on the imagined runs with the ``motor_imagery`` profile's labels, two binary tasks,
    train on one run and test on the other: left vs right fist (R04 <-> R08) and both fists vs both
    feet (R06 <-> R10).

Arms: ``scratch`` (random encoder), ``pretrained`` (no masking, the paper's setup) and
``pretrained_mask`` (``mask_ratio`` 0.5, the ablation). Every arm of a (fold, seed) gets the same
head initialisation (``torch.manual_seed(seed)`` before building), the same batches and steps.
Sizes are small so that the whole run fits ~15 min on a 2-core CPU: the tiny variant, 4-s windows,
a fixed number of pretraining and fine-tuning steps (see the options).

Usage: ``python tools/eegm2_experiment.py --out runs/eegm2_experiment`` (writes results.json and
results.md there and prints the tables).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from eegmamba.data.dataset import build_windows
from eegmamba.pretrain.data import load_unlabeled, pretrain_profile
from eegmamba.pretrain.finetune import (FinetuneConfig, classifier_from_pretrained, finetune,
                                        predict_proba, scratch_classifier)
from eegmamba.pretrain.loop import Pretrainer, PretrainConfig
from eegmamba.eegm2.loss import ReconLossConfig
from eegmamba.registry import build_model, variant_config
from eegmamba.training.metrics import compute_metrics, mean_std
from eegmamba.training.provenance import machine

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ARMS = ("scratch", "pretrained", "pretrained_mask")


def pretrain(files, base: str, args, mask_ratio: float, seed: int):
    """Pretrain the tiny EEGM2 on ``files`` (labels ignored); returns (encoder state, config, log)."""
    profile = pretrain_profile(base=base, window_s=args.window_s, hop_s=args.pretrain_hop_s)
    data = load_unlabeled(files, profile)
    torch.manual_seed(seed)
    cfg = variant_config(args.variant, n_chans=len(data.ch_names), ch_names=tuple(data.ch_names),
                         sfreq=profile.sfreq)
    model = build_model(args.variant, cfg)
    tcfg = PretrainConfig(epochs=10_000, batch_size=8, lr=args.pretrain_lr, max_steps=args.pretrain_steps,
                          seed=seed, loss=ReconLossConfig(mask_ratio=mask_ratio))
    t0 = time.perf_counter()
    tr = Pretrainer(model, data, tcfg, torch.device("cpu"))
    tr.fit()
    if tr.best_state is not None:
        model.load_state_dict(tr.best_state)
    log = {"windows": len(data), "files": [Path(f).name for f in files], "mask_ratio": mask_ratio,
           "initial_val": tr.initial_val, "best_val": tr.best["parts"], "best_epoch": tr.best["epoch"],
           "steps": tr.global_step, "seconds": round(time.perf_counter() - t0, 1)}
    print(f"  pretrain mask={mask_ratio} on {len(data)} windows: val total "
          f"{tr.initial_val['total']:.1f} -> {tr.best['parts']['total']:.1f}, L1 "
          f"{tr.initial_val['l1']:.3f} -> {tr.best['parts']['l1']:.3f} ({log['seconds']} s)", flush=True)
    return model.encoder_state_dict(), model.config, log


def run_fold(X_tr, y_tr, X_te, y_te, ch_names, sfreq, encoders, args) -> dict:
    """Metrics per arm per seed on one fold. ``encoders``: arm -> (state, config) or None."""
    from eegmamba.pretrain.finetune import PretrainedEncoder

    out = {}
    for arm in ARMS:
        out[arm] = []
        for seed in range(args.seeds):
            torch.manual_seed(seed)  # same encoder-init draws, then the same head, in every arm
            head = dict(freeze=args.freeze, pooling="meanmax", head="mlp", dropout=0.5)
            if arm == "scratch":
                cfg = encoders["pretrained"][1]
                model = scratch_classifier(cfg, 2, ch_names, sfreq, **head)
            else:
                state, cfg = encoders[arm]
                pre = PretrainedEncoder(state, cfg, tuple(cfg.ch_names), cfg.sfreq, 0.0, {}, Path("."))
                model = classifier_from_pretrained(pre, 2, ch_names, sfreq, **head)
            fcfg = FinetuneConfig(steps=args.finetune_steps, batch_size=16, lr_encoder=args.lr_encoder,
                                  lr_head=args.lr_head, seed=seed)
            finetune(model, X_tr, y_tr, fcfg)
            m = compute_metrics(y_te, predict_proba(model, X_te))
            out[arm].append({"seed": seed, "acc": m["acc"], "auroc": m["auroc"], "n_test": m["n"]})
    return out


def seizure(args) -> dict:
    sz = DATA / "seizure"
    ws = build_windows(sorted(sz.glob("chb01_*_*ictal10s.edf")), "seizure", hop_s=args.finetune_hop_s)
    pairs = sorted({Path(f).name[:8] for f in ws.files})  # chb01_03 ... chb01_26
    base_files = sorted(sz.glob("chb02_*.edf"))
    crops = sorted(sz.glob("chb01_03_*_41s.edf"))
    encoders = {}
    for key, files in (("all", base_files + crops), ("no_chb01_03", base_files)):
        for arm, mask in (("pretrained", 0.0), ("pretrained_mask", args.mask_ratio)):
            state, cfg, log = pretrain(files, "seizure", args, mask, seed=0)
            encoders[(key, arm)] = (state, cfg, log)
    folds = []
    for pair in pairs:
        test = np.array([Path(f).name.startswith(pair) for f in ws.files])
        key = "no_chb01_03" if pair == "chb01_03" else "all"
        enc = {arm: encoders[(key, arm)][:2] for arm in ARMS[1:]}
        res = run_fold(ws.X[~test], ws.y[~test], ws.X[test], ws.y[test], ws.ch_names, ws.sfreq, enc, args)
        folds.append({"fold": pair, "pretrain_set": key, "n_train": int((~test).sum()),
                      "n_test": int(test.sum()), "arms": res})
        print(f"  fold {pair}: " + "  ".join(
            f"{a} AUROC {np.nanmean([r['auroc'] for r in res[a]]):.3f}" for a in ARMS), flush=True)
    return {"folds": folds, "pretraining": {f"{k}/{a}": v[2] for (k, a), v in encoders.items()}}


def motor_imagery(args) -> dict:
    mi = DATA / "motor_imagery"
    executed = [mi / f"S001R{r:02d}.edf" for r in (3, 5, 7, 9, 11, 13)]
    encoders = {}
    for arm, mask in (("pretrained", 0.0), ("pretrained_mask", args.mask_ratio)):
        state, cfg, log = pretrain(executed, "motor_imagery", args, mask, seed=0)
        encoders[arm] = (state, cfg, log)
    folds = []
    for task, runs, classes in (("left_vs_right", (4, 8), ("left_fist", "right_fist")),
                                ("fists_vs_feet", (6, 10), ("both_fists", "both_feet"))):
        sets = {}
        for r in runs:
            with warnings.catch_warnings():  # each run holds two of the profile's five classes
                warnings.simplefilter("ignore", UserWarning)
                ws = build_windows([mi / f"S001R{r:02d}.edf"], "motor_imagery", hop_s=args.mi_hop_s)
            idx = [ws.classes.index(c) for c in classes]
            keep = np.isin(ws.y, idx)
            sets[r] = (ws.X[keep], (ws.y[keep] == idx[1]).astype(np.int64), ws)
        for tr, te in (runs, runs[::-1]):
            Xtr, ytr, ws = sets[tr]
            Xte, yte, _ = sets[te]
            enc = {a: encoders[a][:2] for a in ARMS[1:]}
            res = run_fold(Xtr, ytr, Xte, yte, ws.ch_names, ws.sfreq, enc, args)
            name = f"{task} R{tr:02d}->R{te:02d}"
            folds.append({"fold": name, "n_train": int(len(ytr)), "n_test": int(len(yte)), "arms": res})
            print(f"  fold {name}: " + "  ".join(
                f"{a} AUROC {np.nanmean([r['auroc'] for r in res[a]]):.3f}" for a in ARMS), flush=True)
    return {"folds": folds, "pretraining": {a: v[2] for a, v in encoders.items()}}


def table(name: str, res: dict) -> str:
    """Markdown: per fold the seed-mean AUROC / ACC of each arm, then mean ± std over folds."""
    lines = [f"### {name}", "", "| fold | n train / test | " + " | ".join(
        f"{a} AUROC | {a} ACC" for a in ARMS) + " |", "|---|---|" + "---|---|" * len(ARMS)]
    per_arm = {a: {"auroc": [], "acc": []} for a in ARMS}
    for f in res["folds"]:
        cells = []
        for a in ARMS:
            au = float(np.nanmean([r["auroc"] for r in f["arms"][a]]))
            ac = float(np.mean([r["acc"] for r in f["arms"][a]]))
            per_arm[a]["auroc"].append(au)
            per_arm[a]["acc"].append(ac)
            cells += [f"{au:.3f}", f"{ac:.3f}"]
        lines.append(f"| {f['fold']} | {f['n_train']} / {f['n_test']} | " + " | ".join(cells) + " |")
    cells = []
    for a in ARMS:
        for m in ("auroc", "acc"):
            s = mean_std(per_arm[a][m])
            cells.append(f"**{s['mean']:.3f} ± {s['std']:.3f}**")
    lines.append("| mean ± std over folds | | " + " | ".join(cells) + " |")
    wins = {a: sum(p > s for p, s in zip(per_arm[a]["auroc"], per_arm["scratch"]["auroc"]))
            for a in ARMS[1:]}
    lines += ["", "Folds where the arm's AUROC beats scratch: " + ", ".join(
        f"{a} {w}/{len(res['folds'])}" for a, w in wins.items())]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="runs/eegm2_experiment", help="output folder")
    p.add_argument("--variant", default="eegm2_tiny", help="eegm2_tiny or eegm2")
    p.add_argument("--window-s", type=float, default=4.0, help="window length, s (pretrain and fine-tune)")
    p.add_argument("--pretrain-hop-s", type=float, default=1.0, help="pretraining window hop, s")
    p.add_argument("--finetune-hop-s", type=float, default=1.0, help="seizure fine-tuning window hop, s")
    p.add_argument("--mi-hop-s", type=float, default=0.05, help="motor-imagery window hop, s (cues ~4.1 s)")
    p.add_argument("--pretrain-steps", type=int, default=100, help="pretraining steps (batch 8)")
    p.add_argument("--pretrain-lr", type=float, default=2e-3, help="pretraining peak lr")
    p.add_argument("--mask-ratio", type=float, default=0.5, help="masking ablation ratio")
    p.add_argument("--finetune-steps", type=int, default=40, help="fine-tuning steps (batch 16)")
    p.add_argument("--lr-encoder", type=float, default=3e-4, help="fine-tuning lr of the encoder")
    p.add_argument("--lr-head", type=float, default=1e-3, help="fine-tuning lr of the head")
    p.add_argument("--freeze", default="full", choices=("frozen", "partial", "full"), help="encoder training")
    p.add_argument("--seeds", type=int, default=2, help="fine-tuning seeds per fold")
    p.add_argument("--threads", type=int, default=1, help="torch threads (2 threads on a loaded 2-core machine was several times slower)")
    p.add_argument("--only", choices=("seizure", "motor_imagery"), default=None, help="run one part")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = {"args": vars(args), "command": " ".join(["python tools/eegm2_experiment.py", *sys.argv[1:]]),
               "machine": machine(), "torch_threads": args.threads}
    md = []
    for name, fn in (("seizure", seizure), ("motor_imagery", motor_imagery)):
        if args.only in (None, name):
            print(f"{name}:", flush=True)
            t = time.perf_counter()
            results[name] = fn(args)
            results[name]["seconds"] = round(time.perf_counter() - t, 1)
            md.append(table(name, results[name]))
    results["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float))
    text = "\n\n".join(md) + f"\n\nTotal {results['seconds']:.0f} s on {results['machine']}.\n"
    (out / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
