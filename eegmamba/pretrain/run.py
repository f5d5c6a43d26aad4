"""One pretraining run, the library behind ``eegmamba-pretrain``: read → window → pretrain → save.

Output folder ``DIR``::

    model/      model.safetensors + model.json   the full autoencoder (best validation epoch)
    encoder/    model.safetensors + model.json   its encoder only, as variant ``eegm2_light``
    pretrain.json                                the resolved run options (checked on --resume)
    state.pt                                     resumable training state
    history.csv, report.md, loss_curves.png, reconstruction.png

Both checkpoints are ordinary project checkpoints (``eegmamba.checkpoint``); their metadata holds the
signal contract like every other checkpoint (``ch_names`` in order, ``sfreq``, ``window_s``,
``hop_s``, ``preprocessing``, ``profile``) and a ``pretraining`` section: variant, options, loss
settings, training summary, input files with SHA-256, command, machine, versions, git commit.
"""

from __future__ import annotations

import dataclasses
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from eegmamba._checks import UserInputError, check_option
from eegmamba.checkpoint import save_checkpoint
from eegmamba.device import resolve_device
from eegmamba.pretrain.data import PretrainData, common_channels, load_unlabeled, pretrain_profile
from eegmamba.pretrain.loop import Pretrainer, PretrainConfig
from eegmamba.pretrain.report import plot_losses, plot_reconstruction, write_history_csv, write_report_md
from eegmamba.registry import build_model, variant_config
from eegmamba.training import provenance as prov
from eegmamba.training.engine.predict import map_batches
from eegmamba.training.engine.runfolder import RunFolder, provenance, write_json
from eegmamba.training.progress import TrainProgress
from eegmamba.training.trainer import seed_everything

#: Autoencoder variants that can be pretrained. ``eegm2_light`` is the encoder only: it is what
#: ``DIR/encoder`` holds after pretraining ``eegm2`` (as in the official code, where "Light" is the
#: pool3 prefix of the trained full model).
PRETRAIN_VARIANTS = ("eegm2", "eegm2_tiny")
MODEL_DIR, ENCODER_DIR, RUN_FILE, STATE_FILE = "model", "encoder", "pretrain.json", "state.pt"


@dataclass(frozen=True)
class PretrainRun:
    """Everything ``eegmamba-pretrain`` was asked to do (see ``eegmamba.pretrain.cli`` for help)."""

    paths: tuple[str, ...]
    out: str
    variant: str = "eegm2"
    window_s: float = 10.0
    hop_s: float | None = None
    channels: tuple[str, ...] | None = None
    profile: str | None = None
    sfreq: float | None = None
    band: tuple[float, float] | None = None
    device: str = "auto"
    train: PretrainConfig = field(default_factory=PretrainConfig)

    def __post_init__(self) -> None:
        if self.variant == "eegm2_light":
            raise UserInputError("--variant eegm2_light is the encoder only and cannot reconstruct; "
                                 "pretrain eegm2 (or eegm2_tiny): its encoder is saved as eegm2_light "
                                 f"in DIR/{ENCODER_DIR}")
        check_option(self.variant, PRETRAIN_VARIANTS, "--variant")
        if not self.paths:
            raise UserInputError("no recordings given")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["train"] = self.train.to_dict()
        return d


class _Progress(TrainProgress):
    def end_epoch(self, record: dict) -> None:
        if self.console is not None:
            self.console.print(
                f"{self.label} epoch {record['epoch']}/{self.epochs}  train {record['train_total']:.4g} "
                f"(L1 {record['train_l1']:.3g})  val {record['val_total']:.4g} (L1 {record['val_l1']:.3g}, "
                f"MSE {record['val_mse']:.3g})  ({record['seconds']:.1f} s)", highlight=False)


def git_commit() -> str | None:
    """The repository's HEAD commit, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def build_data(run: PretrainRun) -> PretrainData:
    """Resolve the channel set and signal contract of ``run`` and read its windows."""
    from eegmamba.data.readers import expand_paths

    files = expand_paths(run.paths)
    channels = run.channels
    if channels is None and run.profile is None:
        channels = common_channels(files)
    profile = pretrain_profile(channels, base=run.profile, window_s=run.window_s, hop_s=run.hop_s,
                               sfreq=run.sfreq, band=run.band)
    return load_unlabeled(files, profile)


def _check_resume(out: Path, run: PretrainRun, resume: bool) -> None:
    RunFolder(out, RUN_FILE).check({"run": run.to_dict()}, resume, required=(STATE_FILE,),
                                   busy=(MODEL_DIR,), what="options", nested="run")


def run_pretraining(run: PretrainRun, resume: bool = False, console=None,
                    argv: Sequence[str] | None = None) -> Path:
    """Run ``run`` and write its outputs (module docstring); returns the output folder.

    Raises ``UserInputError`` for bad input and ``KeyboardInterrupt`` (after saving the state) on
    Ctrl-C; the same call with ``resume=True`` continues.
    """
    out = Path(run.out)
    _check_resume(out, run, resume)
    device = resolve_device(run.device)
    t_start = time.perf_counter()
    data = build_data(run)
    if console is not None:
        console.print(data.summary(), highlight=False)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(run.train.seed)
    n_times = data.profile.window_samples
    config = variant_config(run.variant, n_chans=len(data.ch_names), sfreq=data.profile.sfreq,
                            n_times=n_times, ch_names=tuple(data.ch_names))
    model = build_model(run.variant, config)
    label = "pretrain"
    progress = _Progress(console, label, 0, run.train.epochs)
    trainer = Pretrainer(model, data, run.train, device, out / STATE_FILE, progress)
    progress.steps = trainer.steps_per_epoch
    if resume:
        trainer.load_state(out / STATE_FILE)
    else:
        write_json(out / RUN_FILE, {"run": run.to_dict(), "created": prov.now(),
                                    "provenance": provenance(argv, "eegmamba-pretrain")})
    if console is not None:
        console.print(trainer.split.describe(), highlight=False)
    with progress:
        history = trainer.fit()
    seconds = time.perf_counter() - t_start

    if trainer.best_state is not None:
        model.load_state_dict(trainer.best_state)
    model.eval()
    meta = prov.task_metadata(data.profile)
    meta.pop("class_names")  # unlabeled: no classes
    meta["pretraining"] = {
        "variant": run.variant, "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "config": run.train.to_dict(), "run": run.to_dict(), "summary": trainer.summary(),
        "data_summary": data.summary(), "drops": dict(data.drops),
        "files": [{**fi, "sha256": prov.sha256_file(fi["path"])} for fi in data.files_info],
        "command": _command(argv), "device": str(device), "machine": prov.machine(),
        "versions": prov.versions(), "git_commit": git_commit(), "seconds": seconds,
        "finished": prov.now(),
    }
    save_checkpoint(out / MODEL_DIR, model, {**meta, "role": "autoencoder"})
    encoder = build_model("eegm2_light", model.config)
    encoder.load_state_dict(model.encoder_state_dict())
    save_checkpoint(out / ENCODER_DIR, encoder, {**meta, "role": "encoder"})

    write_history_csv(out / "history.csv", history)
    images = [plot_losses(out / "loss_curves.png", history)]
    x = data.X[trainer.split.val_idx[0]]
    recon = reconstruct(model, x[None])[0]
    images.append(plot_reconstruction(out / "reconstruction.png", x, recon, data.ch_names,
                                      data.profile.sfreq))
    write_report_md(out / "report.md", meta, history, [str(p) for p in images])
    return out


def _command(argv: Sequence[str] | None) -> str:
    import sys

    args = sys.argv[1:] if argv is None else list(argv)
    return " ".join(["eegmamba-pretrain", *args])


def reconstruct(model: torch.nn.Module, X: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """``model`` outputs for windows ``X (N, C, T)`` (eval mode, no grad), as float32 numpy."""
    out = map_batches(model, X, lambda m, xb: m(xb), batch_size=batch_size)
    return torch.cat(out).numpy() if out else np.zeros_like(X)
