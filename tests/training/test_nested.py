"""The issue-17 nested runner (``experiments/run_grid.py``) on tiny SYNTHETIC recordings (4 subjects,
tiny models, one epoch): the choice of each fold is on disk before its test windows are indexed,
refits run exactly the chosen steps, a rerun skips finished units, the report computes the paired
Wilcoxon test from the units."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from experiments import run_grid
from experiments.nested import NestedConfig, NestedRun, trial_ids
from experiments.nested_report import collect, wilcoxon
from tests.training.conftest import PROFILE_YAML, write_edf

RECIPE = {"preset": "modern", "epochs": 1, "batch_size": 8, "evals_per_epoch": 2, "select": "auroc",
          "patience": 1, "seed": 0}


def _grid(root, data) -> str:
    ea = {"alignment": {"method": "euclidean", "offline_reference": "recording", "warmup_s": 4.0}}
    grid = {"name": "t", "profile": str(root / "syn.yaml"),
            "configurations": [
                {"id": "a_ea", "why": "aligned", "model": {"variant": "eegmamba_tiny", "d_model": 8},
                 "profile": {**ea, "augmentation": {"noise": {"p": 0.5, "magnitude": 0.1}}},
                 "recipe": RECIPE},
                {"id": "b_noea", "why": "not aligned", "model": {"variant": "eegmamba_tiny"},
                 "profile": {"alignment": {"method": "none"}}, "recipe": RECIPE}],
            "peers": [{"id": "eegnet_ea", "model": "eegnet", "profile": ea, "recipe": RECIPE},
                      {"id": "eegnet_noea", "model": "eegnet", "recipe": RECIPE},
                      {"id": "ts_lr_recentred", "model": "ts_lr", "options": {"recenter": True}},
                      {"id": "csp_lda", "model": "csp_lda"}],
            "protocol": {"data": str(data), "subjects": ["S001", "S002", "S003", "S004"], "runs": [4],
                         "outer": {"folds": 2, "seed": 0}, "seeds": [0, 1]}}
    path = root / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    return str(path)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("nested")
    (root / "syn.yaml").write_text(PROFILE_YAML.replace("name: syn", "name: syn_mi"))
    data = root / "data"
    data.mkdir()
    for i in range(4):
        write_edf(data / f"S00{i + 1}R04.edf", seed=i + 1, duration_s=24.0)
    grid = _grid(root, data)
    out = root / "out"
    argv = ["--grid", grid, "--out", str(out)]
    assert run_grid.main(argv) == 0
    return out, argv, grid


def _units(out, kind):
    return {p.relative_to(out / "units" / kind).as_posix(): json.loads(p.read_text())
            for p in sorted((out / "units" / kind).rglob("*.json"))}


def test_choice_is_written_before_any_test_window_and_refits_replay_its_steps(run):
    out, _, grid = run
    inner, test = _units(out, "inner"), _units(out, "test")
    choices = {c["fold"]: c for c in _units(out, "choice").values()}
    assert sorted(choices) == [1, 2]
    assert len(inner) == 2 * 4  # 2 configs + 2 EEGNet peers, 2 folds
    for name, u in inner.items():
        fold = int(name.split("fold_")[1].split(".")[0])
        assert set(u["train_subjects"]).isdisjoint(u["val_subjects"])
        assert u["best_step"] in [e["step"] for e in u["evals"]]  # read at every validation point
        assert u["best_val_auroc"] == max(e["val_auroc"] for e in u["evals"])
        tested = next(t for t in test.values() if t["fold"] == fold)["test_subjects"]
        assert set(tested).isdisjoint(u["train_subjects"] + u["val_subjects"])
    for t in test.values():
        c = choices[t["fold"]]
        choice_file = out / "units" / "choice" / f"fold_{t['fold']}.json"
        unit_file = out / "units" / "test" / t["arm"] / (
            f"fold_{t['fold']}" + ("" if t["seed"] is None else f"_seed_{t['seed']}") + ".json")
        assert choice_file.stat().st_mtime_ns < unit_file.stat().st_mtime_ns
        if t["arm"] == "eegmamba_chosen":
            assert t["config"] == c["chosen"] and t["steps"] == c["chosen_step"] == t["steps_run"]
        elif t["arm"].startswith("eegnet"):
            assert t["steps"] == c["peers"][t["arm"]]["best_step"] == t["steps_run"]
        assert set(t["subjects"]) == set(t["test_subjects"])
        assert t["n_trials"] < t["n_windows"] and 0 <= t["per_trial"]["auroc"] <= 1
        if t["alignment"] == "euclidean" and t["model"] != "csp_lda":  # also the causal live rule
            assert 0 < t["causal_alignment"]["n_windows"] < t["n_windows"]
        else:
            assert t["causal_alignment"] is None
    chosen = {c["chosen"] for c in choices.values()}
    best = {f: max(("a_ea", "b_noea"), key=lambda k: inner[f"{k}/fold_{f}.json"]["best_val_auroc"])
            for f in (1, 2)}
    assert chosen == set(best.values())
    assert {t["seed"] for t in test.values() if t["arm"] == "eegmamba_chosen"} == {0, 1}
    # by construction: the runner refuses test windows while a fold's choice is missing
    r = NestedRun(NestedConfig(grid=grid, out=str(out)), resume=True)
    r.load()
    (out / "units" / "choice" / "fold_1.json").rename(out / "moved.json")
    try:
        with pytest.raises(RuntimeError, match="before the choice"):
            r.test_windows(r.units[0])
    finally:
        (out / "moved.json").rename(out / "units" / "choice" / "fold_1.json")


def test_resume_skips_finished_units_and_report_has_the_paired_test(run, capsys):
    out, argv, _ = run
    before = {p: p.stat().st_mtime_ns for p in (out / "units").rglob("*.json")}
    assert run_grid.main(argv) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert run_grid.main(argv + ["--resume"]) == 0
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    r = collect(out)
    t = r["paired"]["vs_eegnet_same_alignment"]["per_window"]
    assert t["n"] == 4 and t["wins"] + t["losses"] <= 4
    report = (out / "report.md").read_text()
    for text in ("## Selection", "## Chosen per outer fold", "eegmamba_chosen", "ts_lr_recentred",
                 "Wilcoxon", "vs_eegnet_same_alignment", "eegnet_ea[causal EA]"):
        assert text in report


def test_wilcoxon_and_trials():
    a = {f"S{i}": 0.7 + 0.01 * i for i in range(8)}
    b = {f"S{i}": 0.6 for i in range(8)}
    t = wilcoxon(a, b)
    assert t["wins"] == 8 and t["p"] < 0.01 and math.isclose(t["mean_diff"], 0.135)
    assert math.isnan(wilcoxon(a, a)["p"])
    files = np.array(["f"] * 5 + ["g"] * 2)
    ids = trial_ids(files, np.array([0, .5, 1, 4, 4.5, 0, .5]), np.array([0, 0, 0, 1, 1, 0, 0]), 0.5)
    assert ids.tolist() == [0, 0, 0, 1, 1, 2, 2]


def test_with_executed_adds_runs_3_7_11_to_training_only(run, tmp_path):
    out, _, grid = run
    g = yaml.safe_load(open(grid))
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        for r in (3, 4):
            write_edf(data / f"S00{i + 1}R0{r}.edf", seed=10 * i + r, duration_s=24.0)
    run_imag = NestedRun(NestedConfig(grid=grid, out=str(tmp_path / "a"), data=(str(data),)))
    run_exec = NestedRun(NestedConfig(grid=grid, out=str(tmp_path / "b"), data=(str(data),),
                                      with_executed=True))
    run_imag.load()
    run_exec.load()
    assert g["protocol"]["runs"] == [4]
    for ui, ue in zip(run_imag.units, run_exec.units):
        assert ui.test_subjects == ue.test_subjects  # the folds of the imagery windows
        tr_runs = run_exec.train_runs
        subj = run_exec.train.subjects
        assert set(tr_runs[ue.val_idx]) == {4} and set(run_exec.test_runs[ue._test_idx]) == {4}
        assert set(tr_runs[ue.fit_idx]) == {3, 4} and set(tr_runs[ue.refit_idx]) == {3, 4}
        assert set(subj[ue.fit_idx]) == set(run_imag.train.subjects[ui.fit_idx])
        assert set(subj[ue.refit_idx]).isdisjoint(ue.test_subjects)
        assert set(subj[ue.refit_idx]) == set(subj[ue.fit_idx]) | set(subj[ue.val_idx])
        # imagery windows of the unit are those of the imagery-only run
        assert len(ue.val_idx) == len(ui.val_idx) and len(ue._test_idx) == len(ui._test_idx)


def test_choices_from_refits_the_borrowed_choice_and_compares_with_its_run(run, tmp_path, capsys):
    import shutil

    out, _, grid = run
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        shutil.copy(out.parent / "data" / f"S00{i + 1}R04.edf", data)
        write_edf(data / f"S00{i + 1}R03.edf", seed=10 * i + 3, duration_s=24.0)
    x = tmp_path / "x"
    argv = ["--grid", grid, "--out", str(x), "--with-executed", "--choices-from", str(out),
            "--data", str(data), "--seeds", "0"]
    assert run_grid.main(argv) == 0
    assert not (x / "units" / "inner").exists()  # no selection ran
    theirs = {c["fold"]: c for c in _units(out, "choice").values()}
    mine = {c["fold"]: c for c in _units(x, "choice").values()}
    assert sorted(mine) == [1, 2]
    for f, c in mine.items():
        assert (c["chosen"], c["chosen_step"], c["peers"]) == (
            theirs[f]["chosen"], theirs[f]["chosen_step"], theirs[f]["peers"])
        assert c["borrowed_from"].endswith(f"fold_{f}.json")
    test, before = _units(x, "test"), _units(out, "test")
    assert {t["seed"] for t in test.values() if t["arm"] == "eegmamba_chosen"} == {0}
    for name, t in test.items():
        assert t["n_train"] > before[name]["n_train"]  # the executed runs joined training
        assert t["test_subjects"] == before[name]["test_subjects"]
        if t["arm"] == "eegmamba_chosen":
            assert t["steps"] == t["steps_run"] == mine[t["fold"]]["chosen_step"]
    r = collect(x)
    assert r["vs_choices_from"]["eegmamba_chosen"]["units"] == 2  # folds 1-2 of seed 0 in both
    assert r["vs_choices_from"]["csp_lda"]["per_window"]["n"] == 4
    assert "## This run −" in (x / "report.md").read_text()
    # a run of another grid is refused with a one-line error
    g = yaml.safe_load(open(grid))
    g["name"] = "other"
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(g))
    capsys.readouterr()
    assert run_grid.main(["--grid", str(other), "--out", str(tmp_path / "y"), "--choices-from",
                          str(out), "--data", str(data)]) == 2
    assert "borrow choices only from a run of this grid" in capsys.readouterr().err
