"""tools/ablation_model_review.py: the class-token arm really builds that model, and the paired
table compares arms on the units all of them finished."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "ablation_model_review.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("_ablation_tool", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cls_arm_builds_that_model(tool, tmp_path):
    import argparse

    import numpy as np

    from eegmamba.profiles import load_profile
    from eegmamba.training.arms import Windows, fit_arm

    a = argparse.Namespace(ablation="cls", profile="motor_imagery", protocol="within-subject",
                           data=["x"], subjects=None, runs=None, train_runs=[4, 8], test_runs=[12],
                           folds=5, seed=0, epochs=1, patience=1, batch_size=8,
                           variant="eegmamba_single")
    cfg = tool.protocol_config(a, "middle", tmp_path, ("eegmamba",))
    assert cfg.settings.eegmamba_cls_position == "middle"
    settings = tool.protocol_config(a, "start", tmp_path, ("eegmamba",)).settings
    assert settings.eegmamba_cls_position == "start"
    profile = load_profile("motor_imagery")
    rng = np.random.default_rng(0)
    z = rng.standard_normal((8, profile.n_channels, profile.window_samples)).astype(np.float32)
    w = Windows(z, z, np.array([0, 1] * 4))
    fitted = fit_arm("eegmamba", profile, w, None, cfg.settings, seed=0)
    assert fitted.model.config.cls_position == "middle"


def _unit(subject, acc):
    m = {"acc": acc, "balanced_acc": acc, "auroc": acc, "f1_weighted": acc, "kappa": acc, "n": 10}
    return {"test_subjects": [subject], "metrics": m, "fit": {"best_epoch": 1, "epochs_run": 5}}


def test_paired_table_uses_common_units_and_signs(tool):
    units = {"a": {"fold_1": _unit("x", 0.5), "fold_2": _unit("y", 0.7), "fold_3": _unit("z", 0.9)},
             "b": {"fold_1": _unit("x", 0.6), "fold_2": _unit("y", 0.6)}}
    text = tool.paired_table(units, ["a", "b"])
    assert "Units finished by every arm: 2 (fold_1, fold_2)" in text
    assert "| a | 0.600 ± 0.100 |" in text  # fold_3 (only arm a) left out
    assert "| b − a (paired) | +0.000 ± 0.100 (1/2 up) |" in text
