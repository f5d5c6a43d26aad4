"""Multi-task training from a YAML run file (dynamic sampling, eegmamba_tiny), run-file errors, and
the whole eegmamba-train under torchrun with 2 CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from eegmamba.training import cli_train

from .conftest import PROFILE_YAML, REPO, write_edf


def test_multitask_run_file_with_empty_class_warning(syn, tmp_path, capsys):
    data2 = tmp_path / "d2"
    data2.mkdir()
    for i, s in enumerate(("subjX", "subjY")):  # 3 channels, 2 s windows, class "c" never annotated
        write_edf(data2 / f"{s}.edf", seed=10 + i, ch_names=("C1", "C2", "C3"), duration_s=16.0)
    prof2 = tmp_path / "syn3.yaml"
    prof2.write_text(PROFILE_YAML.replace("name: syn", "name: syn3").replace("[C1, C2]", "[C1, C2, C3]")
                     .replace("length_s: 1.0", "length_s: 2.0").replace("classes: [a, b]",
                                                                         "classes: [a, b, c]"))
    run = tmp_path / "run.yaml"
    run.write_text(f"""
out: out
folds: 2
epochs: 1
batch_size: 8
variant: eegmamba_tiny
final: false
tasks:
  - {{profile: {syn['profile']}, data: [{syn['data']}]}}
  - {{profile: syn3.yaml, data: d2}}
""")
    assert cli_train.main(["--run", str(run)]) == 0
    out = capsys.readouterr().out
    assert "no windows for class(es) c" in out
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(res["tasks"]) == {"syn", "syn3"} and res["n_folds"] == 2
    assert res["run"]["config"]["variant"] == "eegmamba_tiny"
    meta = json.loads((tmp_path / "out" / "folds" / "fold_1" / "checkpoint" / "model.json").read_text())
    assert set(meta["metadata"]["tasks"]) == {"syn", "syn3"}
    assert [t["n_chans"] for t in meta["config"]["tasks"]] == [2, 3]


@pytest.mark.parametrize("text,expect", [
    ("tasks: []\n", "tasks must be a non-empty list"),
    ("epochs: 2\nbogus: 1\ntasks: [{profile: x, data: y}]\n", "bogus is not a known field"),
    ("epochs: two\ntasks: [{profile: x, data: y}]\n", "epochs must be int"),
])
def test_run_file_errors(tmp_path, capsys, text, expect):
    f = tmp_path / "r.yaml"
    f.write_text(text)
    assert cli_train.main(["--run", str(f), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert expect in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_torchrun_two_cpu_processes(syn, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "eegmamba.training.cli_train", "--profile", syn["profile"], "--data", syn["data"],
           "--out", str(out), "--folds", "2", "--epochs", "1", "--batch-size", "16",
           "--variant", "eegmamba_tiny", "--no-final", "--no-baseline", "--device", "cpu"]
    # own process group, so a hang cannot leave the two workers behind
    p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    try:
        stdout, stderr = p.communicate(timeout=280)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise
    assert p.returncode == 0, stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert res["run"]["world_size"] == 2 and res["n_folds"] == 2
    assert all(f["model"]["n"] > 0 for f in res["tasks"]["syn"]["folds"])
    assert stdout.count("fold 1/2 epoch 1/1") == 1  # only rank 0 prints
