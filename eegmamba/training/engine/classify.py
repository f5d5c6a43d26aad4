"""Classification validation of the engine: loss, accuracy, balanced accuracy and AUROC of the
weights being kept, window-weighted over tasks."""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score

from eegmamba.training.engine.predict import map_batches
from eegmamba.training.metrics import auroc


def validate_classification(core: nn.Module, val: dict, forward, device: torch.device,
                            batch_size: int, amp: bool = False) -> dict:
    """``{"val_loss" (plain cross-entropy), "val_acc", "val_balanced_acc", "val_auroc"}`` of
    ``core`` on ``val`` (task → TaskData), ``forward(model, x, task) -> logits``."""
    sums = {"val_loss": 0.0, "val_acc": 0.0, "val_balanced_acc": 0.0, "val_auroc": 0.0}
    n_all = 0
    for task, d in val.items():
        logits = torch.cat(map_batches(core, d.X, lambda m, xb, t=task: forward(m, xb, t), device,
                                       batch_size, amp))
        y = np.asarray(d.y)
        pred = logits.argmax(1).numpy()
        with warnings.catch_warnings():  # "y_pred contains classes not in y_true" is expected
            warnings.simplefilter("ignore")
            bal = float(balanced_accuracy_score(y, pred))
        m = {"val_loss": float(F.cross_entropy(logits, torch.from_numpy(y))),
             "val_acc": float((pred == y).mean()), "val_balanced_acc": bal,
             "val_auroc": auroc(y, torch.softmax(logits, 1).double().numpy())}
        for k in sums:
            sums[k] += m[k] * len(y)
        n_all += len(y)
    return {k: v / max(n_all, 1) for k, v in sums.items()}
