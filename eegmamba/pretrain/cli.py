"""``eegmamba-pretrain PATH... --out DIR``: self-supervised EEGM2 pretraining on unlabeled recordings.

Thin command: parse, build a ``PretrainRun``, call ``eegmamba.pretrain.run.run_pretraining``.
See ``docs/pretraining.md``.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from eegmamba.cli_common import run_cli
from eegmamba.data.xdf import add_xdf_options, apply_xdf_options


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="eegmamba-pretrain", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Pretrain EEGM2 (Mamba-2 U-Net autoencoder) by reconstructing unlabeled EEG "
        "(annotations ignored), through the same preprocessing as training and the live loop.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="recordings (any MNE-readable file) or folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--variant", default="eegm2", help="eegm2 (official sizes) or eegm2_tiny (tests, "
                   "quick runs); the encoder is saved as eegm2_light")
    p.add_argument("--window-s", type=float, default=10.0, help="window length, seconds")
    p.add_argument("--hop-s", type=float, default=None, help="hop between windows, seconds "
                   "(default: the window length, no overlap)")
    p.add_argument("--channels", nargs="+", default=None, help="channel names in model order "
                   "(comma or space separated; default: the profile's, else those common to all files)")
    p.add_argument("--profile", default=None, help="task profile (name or YAML) whose channels, "
                   "aliases, rate, filter and quality rules are used (its labels are not)")
    p.add_argument("--sfreq", type=float, default=None, help="model rate, Hz (default: the profile's, else 200)")
    p.add_argument("--band", type=float, nargs=2, metavar=("L", "H"), default=None,
                   help="band-pass edges, Hz (default: the profile's, else 0.1 50)")
    p.add_argument("--epochs", type=int, default=50, help="epochs")
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0 = no limit)")
    p.add_argument("--batch-size", type=int, default=64, help="windows per step (64 as the official "
                   "EEGM2 code; 32 halves the memory)")
    p.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (OneCycle)")
    p.add_argument("--weight-decay", type=float, default=1e-2, help="AdamW weight decay")
    p.add_argument("--val-fraction", type=float, default=0.2, help="fraction of subjects for validation")
    p.add_argument("--mask-ratio", type=float, default=0.0, help="fraction of 0.2-s patches hidden from "
                   "the model (0 = the paper: no masking)")
    p.add_argument("--fft-norm", choices=("backward", "ortho"), default="backward",
                   help="spectral term: backward = the paper's (about T x MSE), ortho = about MSE")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="device")
    p.add_argument("--seed", type=int, default=0, help="random seed (init, split, batches, masks)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out (same options)")
    add_xdf_options(p)
    return p


def _main(argv: Sequence[str] | None) -> int:
    from rich.console import Console

    from eegmamba.eegm2.loss import ReconLossConfig
    from eegmamba.pretrain.loop import PretrainConfig
    from eegmamba.pretrain.run import PretrainRun, run_pretraining

    a = build_parser().parse_args(argv)
    apply_xdf_options(a)
    channels = None
    if a.channels is not None:
        channels = tuple(c for item in a.channels for c in item.split(",") if c.strip())
    loss = ReconLossConfig(fft_norm=a.fft_norm, mask_ratio=a.mask_ratio)
    train = PretrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay,
                           val_frac=a.val_fraction, seed=a.seed, max_steps=a.max_steps, loss=loss)
    run = PretrainRun(paths=tuple(a.paths), out=a.out, variant=a.variant, window_s=a.window_s,
                      hop_s=a.hop_s, channels=channels, profile=a.profile, sfreq=a.sfreq,
                      band=tuple(a.band) if a.band else None, device=a.device, train=train)
    console = Console()
    try:
        out = run_pretraining(run, resume=a.resume, console=console, argv=argv)
    except KeyboardInterrupt:
        console.print(f"interrupted: state saved in {a.out}; continue with the same command and --resume")
        return 130
    console.print(f"pretrained model in {out}/model, encoder in {out}/encoder, report {out}/report.md",
                  highlight=False)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, argv, prog="eegmamba-pretrain")


if __name__ == "__main__":
    raise SystemExit(main())
