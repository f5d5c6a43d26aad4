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


def test_cls_position_context_sets_and_restores(tool):
    import eegmamba
    from eegmamba import TaskSpec

    spec = TaskSpec("t", 2, 400, 2, sfreq=200.0)
    with tool.cls_position("middle"):
        from eegmamba import create_model  # what fit_arm does at call time

        m = create_model("eegmamba_single", tasks=[spec])
    assert m.config.cls_position == "middle"
    assert eegmamba.create_model("eegmamba_single", tasks=[spec]).config.cls_position == "start"


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
