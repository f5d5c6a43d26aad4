"""``eegmamba-protocol`` on real EEGMMIDB runs (2-3 subjects, tiny models, one epoch): every arm is
tested on the same windows, subjects never leak between training and test, runs are split as the
protocol says, resume skips finished units and adds new arms."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eegmamba.checkpoint import read_metadata
from eegmamba.training import cli_protocol
from eegmamba.training.cli_protocol import subject_range
from eegmamba.training.metrics import compute_metrics

FAST = ["--variant", "eegmamba_tiny", "--epochs", "1", "--eegnet-epochs", "1"]


@pytest.fixture(scope="module")
def xs(tmp_path_factory, shared_data):
    out = tmp_path_factory.mktemp("xs") / "run"
    argv = ["--protocol", "cross-subject", "--data", str(shared_data / "motor_imagery"),
            "--subjects", "S002-S003", "--runs", "4", "12", "--folds", "2", "--out", str(out),
            "--models", "eegmamba", "eegnet", "csp_lda", *FAST]
    assert cli_protocol.main(argv) == 0
    return out, argv


def _units(out, arm):
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / "units" / arm).glob("*.json"))}


def test_cross_subject_same_windows_for_every_arm_no_leak(xs):
    out, _ = xs
    res = json.loads((out / "results.json").read_text())
    assert set(res["arms"]) == {"eegmamba", "eegnet", "csp_lda"}
    per_arm = {a: _units(out, a) for a in res["arms"]}
    tested = sorted(s for u in per_arm["csp_lda"].values() for s in u["test_subjects"])
    assert tested == ["S002", "S003"]  # each subject tested once
    for name, u in per_arm["csp_lda"].items():
        for arm in ("eegmamba", "eegnet"):
            v = per_arm[arm][name]
            assert v["y_true"] == u["y_true"] and v["t_start"] == u["t_start"]
            assert v["test_subjects"] == u["test_subjects"]
        assert set(u["subjects"]) == set(u["test_subjects"])
        # test windows are on the live 0.5 s grid (training windows on 0.25 s)
        assert np.allclose(np.asarray(u["t_start"]) * 2, np.round(np.asarray(u["t_start"]) * 2))
        meta = read_metadata(out / "units" / "eegmamba" / name / "eegmamba")
        trained = set(meta["metadata"]["training"]["trained_on_subjects"])
        assert trained == {"S002", "S003"} - set(u["test_subjects"])
        # one training subject: early stopping on one of its files, never the test subject's
        assert u["val_subjects"] == sorted(trained) and "file(s)" in u["validation"]
        for k in ("acc", "balanced_acc", "auroc", "f1_weighted", "kappa"):
            assert 0 <= u["metrics"][k] <= 1 or k == "kappa"
    report = (out / "report.md").read_text()
    for text in ("## Summary (mean ± std over folds)", "| CSP+LDA | 2 |", "| S003 |", "κ", "BACC"):
        assert text in report


def test_resume_adds_an_arm_and_skips_finished_units(xs, capsys):
    out, argv = xs
    before = {p: p.stat().st_mtime_ns for p in (out / "units").rglob("*.json")}
    assert cli_protocol.main(argv) == 2
    assert "already holds a run; use --resume" in capsys.readouterr().err
    models = argv.index("--models")
    argv2 = argv[:models] + ["--models", "mdm"] + argv[models + 4:] + ["--resume"]
    assert cli_protocol.main(argv2) == 0
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # nothing recomputed
    res = json.loads((out / "results.json").read_text())
    assert set(res["arms"]) == {"eegmamba", "eegnet", "csp_lda", "mdm"}
    changed = argv2[:argv2.index("--folds")] + ["--folds", "3"] + argv2[argv2.index("--folds") + 2:]
    assert cli_protocol.main(changed) == 2
    assert "options or data differ" in capsys.readouterr().err


def test_within_subject_splits_runs(tmp_path, shared_data):
    out = tmp_path / "ws"
    assert cli_protocol.main(["--protocol", "within-subject", "--data", str(shared_data / "motor_imagery"),
                              "--subjects", "S001", "S002", "--runs", "4", "8", "12", "--out", str(out),
                              "--models", "ts_lr", "eegnet", *FAST]) == 0
    units = _units(out, "ts_lr")
    assert list(units) == ["S002"]  # S001 has no run 12 here: not a within-subject unit
    u = units["S002"]
    assert set(u["runs"]) == {12} and u["subjects"] == ["S002"] * len(u["y_true"])
    assert "S002R04.edf" in u["validation"] and "S002R08.edf" in u["validation"]
    assert _units(out, "eegnet")["S002"]["y_true"] == u["y_true"]


def test_calibrated_three_conditions_on_the_same_windows(xs, tmp_path, shared_data):
    """Fold model fine-tuned on the subject's calibration run vs the fold model as it is vs from
    scratch: the same test windows; (1) and (2) are the other runs' predictions, not recomputed."""
    out, _ = xs
    ws = tmp_path / "ws"
    assert cli_protocol.main(["--protocol", "within-subject", "--data", str(shared_data / "motor_imagery"),
                              "--subjects", "S002-S003", "--runs", "4", "12", "--train-runs", "4",
                              "--test-runs", "12", "--out", str(ws), "--models", "eegnet", "csp_lda",
                              *FAST]) == 0
    cal = tmp_path / "cal"
    argv = ["--protocol", "calibrated", "--cross-subject-run", str(out), "--within-subject-run", str(ws),
            "--out", str(cal), "--models", "eegnet", "csp_lda"]
    assert cli_protocol.main(argv) == 0
    res = json.loads((cal / "results.json").read_text())
    assert set(res["arms"]) == {"eegnet", "csp_lda"}
    for arm in ("eegnet", "csp_lda"):
        units = _units(cal, arm)
        assert sorted(units) == ["S002", "S003"]
        for s, u in units.items():
            w = _units(ws, arm)[s]
            assert u["y_true"] == w["y_true"] and u["t_start"] == w["t_start"]
            assert set(u["metrics"]) == {"uncalibrated", "scratch", "calibrated"}
            # the stored (5-digit) probabilities of the within-subject run, scored again
            assert u["proba"]["scratch"] == w["proba"]
            assert u["metrics"]["scratch"] == pytest.approx(
                compute_metrics(np.asarray(w["y_true"]), np.asarray(w["proba"])), nan_ok=True)
            x = next(v for v in _units(out, arm).values() if s in v["test_subjects"])
            keep = [i for i, (r, su) in enumerate(zip(x["runs"], x["subjects"])) if r == 12 and su == s]
            assert u["proba"]["uncalibrated"] == [x["proba"][i] for i in keep]
            assert u["fold"] == x["unit"]
    assert "starts from" not in (cal / "report.md").read_text()
    assert "| EEGNet-8,2 (ours) | (3) cross-subject + calibration | 2 |" in (cal / "report.md").read_text()
    # neural calibration starts from the fold model: one epoch of fine-tuning changes its output
    u = _units(cal, "eegnet")["S002"]
    assert u["fit"]["init"].startswith("cross-subject fold_")
    assert u["proba"]["calibrated"] != u["proba"]["uncalibrated"]
    assert cli_protocol.main(argv) == 2  # a run is there: --resume needed
    assert cli_protocol.main(argv + ["--resume"]) == 0


def test_cli_errors(tmp_path, shared_data, capsys):
    base = ["--data", str(shared_data / "motor_imagery"), "--out", str(tmp_path / "x")]
    assert cli_protocol.main(["--protocol", "cross-subject", "--subjects", "S999", *base]) == 2
    assert "no recordings" in capsys.readouterr().err
    assert cli_protocol.main(["--protocol", "calibrated", "--out", str(tmp_path / "y")]) == 2
    assert "needs --cross-subject-run" in capsys.readouterr().err
    assert cli_protocol.main(["--protocol", "within-subject", "--epochs", "0", *base]) == 2
    assert "--epochs must be >= 1" in capsys.readouterr().err


def test_subject_range():
    assert subject_range(["S001-S003", "S010"]) == ("S001", "S002", "S003", "S010")
    with pytest.raises(ValueError, match="empty"):
        subject_range(["S005-S002"])


def test_d_model_sets_the_width_and_is_recorded(tmp_path, shared_data, capsys):
    out = tmp_path / "xs"
    argv = ["--protocol", "cross-subject", "--data", str(shared_data / "motor_imagery"),
            "--subjects", "S002-S003", "--runs", "4", "--folds", "2", "--out", str(out),
            "--models", "eegmamba", *FAST, "--d-model", "24"]
    assert cli_protocol.main(argv) == 0
    unit = sorted((out / "units" / "eegmamba").glob("*.json"))[0].stem
    meta = read_metadata(out / "units" / "eegmamba" / unit / "eegmamba")
    assert json.dumps(meta).count('"d_model": 24') >= 1
    assert json.loads((out / "run.json").read_text())["config"]["settings"]["eegmamba_d_model"] == 24
    assert cli_protocol.main(argv[:-1] + ["16", "--resume"]) == 2  # another width: not the same run
    assert "differ" in capsys.readouterr().err
    assert cli_protocol.main(argv[:-2] + ["--d-model", "4"]) == 2
    assert "--d-model must be >= 8" in capsys.readouterr().err
