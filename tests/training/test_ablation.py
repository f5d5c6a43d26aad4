"""``eegmamba-protocol --ablation`` (``eegmamba.training.ablation``): the class-token arm really
builds that model, the paired table compares arms on the units all of them finished, and a tiny
run writes one protocol folder per arm on the same units."""

from __future__ import annotations

import json

import numpy as np

from eegmamba.training import cli_protocol
from eegmamba.training.ablation import arm_config, paired_table
from eegmamba.training.protocols import ProtocolConfig


def test_cls_arm_builds_that_model(tmp_path):
    from eegmamba.profiles import load_profile
    from eegmamba.training.arms import Windows, fit_arm

    base = ProtocolConfig(protocol="within-subject", profile="motor_imagery", data=("x",),
                          out=str(tmp_path))
    cfg = arm_config(base, "cls", "middle", ("eegmamba",))
    assert cfg.settings.eegmamba_cls_position == "middle" and cfg.out == str(tmp_path / "middle")
    assert arm_config(base, "cls", "start", ("eegmamba",)).settings.eegmamba_cls_position == "start"
    norm = arm_config(base, "norm", "recording", ("eegmamba",))
    assert norm.profile == str(tmp_path / "profile_recording.yaml")  # a copy, that field changed
    assert arm_config(base, "norm", "zscore", ("eegmamba",)).profile == "motor_imagery"
    profile = load_profile("motor_imagery")
    rng = np.random.default_rng(0)
    z = rng.standard_normal((8, profile.n_channels, profile.window_samples)).astype(np.float32)
    w = Windows(z, z, np.array([0, 1] * 4))
    import dataclasses

    settings = dataclasses.replace(cfg.settings, eegmamba_epochs=1, eegmamba_batch=8)
    fitted = fit_arm("eegmamba", profile, w, None, settings, seed=0)
    assert fitted.model.config.cls_position == "middle"


def _unit(subject, acc):
    m = {"acc": acc, "balanced_acc": acc, "auroc": acc, "f1_weighted": acc, "kappa": acc, "n": 10}
    return {"test_subjects": [subject], "metrics": m, "fit": {"best_epoch": 1, "epochs_run": 5}}


def test_paired_table_uses_common_units_and_signs():
    units = {"a": {"fold_1": _unit("x", 0.5), "fold_2": _unit("y", 0.7), "fold_3": _unit("z", 0.9)},
             "b": {"fold_1": _unit("x", 0.6), "fold_2": _unit("y", 0.6)}}
    text = paired_table(units, ["a", "b"])
    assert "Units finished by every arm: 2 (fold_1, fold_2)" in text
    assert "| a | 0.600 ± 0.100 |" in text  # fold_3 (only arm a) left out
    assert "| b − a (paired) | +0.000 ± 0.100 (1/2 up) |" in text


def test_cli_runs_every_arm_on_the_same_units(tmp_path, shared_data, capsys):
    out = tmp_path / "abl"
    argv = ["--protocol", "within-subject", "--data", str(shared_data / "motor_imagery"),
            "--subjects", "S002", "--runs", "4", "8", "12", "--variant", "eegmamba_tiny",
            "--epochs", "1", "--batch-size", "16", "--ablation", "cls", "--arms", "start,end",
            "--models", "eegmamba", "csp_lda", "--out", str(out)]
    assert cli_protocol.main(argv) == 0
    assert "Units finished by every arm: 1 (S002)" in capsys.readouterr().out
    units = {arm: json.loads((out / arm / "units" / "eegmamba" / "S002.json").read_text())
             for arm in ("start", "end")}
    assert units["start"]["y_true"] == units["end"]["y_true"]  # the same test windows
    assert (out / "start" / "units" / "csp_lda" / "S002.json").is_file()  # the peer: first arm only
    assert not (out / "end" / "units" / "csp_lda").exists()
    saved = json.loads((out / "ablation.json").read_text())
    assert saved["arms"] == ["start", "end"] and saved["peers"] == ["csp_lda"]
    assert set(saved["units"]["end"]) == {"S002"}
    assert "| end − start (paired) |" in (out / "ablation.md").read_text()
    assert cli_protocol.main(argv) == 0  # a rerun resumes: every unit skipped
    assert "done already, skipped" in capsys.readouterr().out


def test_cli_ablation_errors(tmp_path, capsys):
    base = ["--protocol", "within-subject", "--data", str(tmp_path), "--out", str(tmp_path / "o")]
    assert cli_protocol.main([*base, "--ablation", "cls", "--arms", "start", "left"]) == 2
    assert "--ablation cls needs two or more different --arms of start, middle, end" in \
        capsys.readouterr().err
    assert cli_protocol.main([*base, "--arms", "start", "end"]) == 2
    assert "--ablation and --arms go together" in capsys.readouterr().err
