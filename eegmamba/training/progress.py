"""rich progress for training: one bar per epoch with batch, loss, throughput and ETA, plus a line per
finished epoch. With ``console=None`` nothing is shown (other DDP ranks, library use)."""

from __future__ import annotations

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)


class TrainProgress:
    def __init__(self, console, label: str, steps_per_epoch: int, epochs: int) -> None:
        self.console, self.label = console, label
        self.steps, self.epochs = steps_per_epoch, epochs
        self.progress = None
        self.task = None

    def __enter__(self) -> "TrainProgress":
        if self.console is not None:
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[rate]:.1f} win/s"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=self.console, transient=True,
            )
            self.progress.start()
        return self

    def start_epoch(self, epoch: int, done_steps: int = 0) -> None:
        if self.progress is None:
            return
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(f"{self.label} epoch {epoch}/{self.epochs} batch",
                                           total=self.steps, completed=done_steps,
                                           loss=float("nan"), rate=0.0)

    def advance(self, loss: float, rate: float) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=1, loss=loss, rate=rate)

    def end_epoch(self, record: dict) -> None:
        if self.console is None:
            return
        val = (f"  val_loss {record['val_loss']:.4f}  val_acc {record['val_acc']:.3f}"
               if "val_acc" in record else "")
        if "val_balanced_acc" in record:
            val += f"  bal_acc {record['val_balanced_acc']:.3f}  auroc {record['val_auroc']:.3f}"
        parts = (f" (ce {record['train_ce']:.4f} + aux {record['train_aux']:.4f})"
                 if record.get("train_aux") else "")
        self.console.print(f"{self.label} epoch {record['epoch']}/{self.epochs}  train_loss "
                           f"{record['train_loss']:.4f}{parts}{val}  ({record['seconds']:.1f} s)")

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()
