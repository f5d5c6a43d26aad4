"""The benchmark tools measure what they say: one tiny config each, in-process (seconds)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

TOOLS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", TOOLS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bench_model():
    return _load("bench_model")


@pytest.mark.parametrize("model", ["eegmamba", "conformer"])
def test_run_config_measures_speed_and_memory(bench_model, model):
    threads = torch.get_num_threads()
    spec = {"model": model, "n_chans": 2, "n_times": 400, "device": "cpu", "batch_size": 2,
            "threads": 1, "warmup": 1, "iters": 2, "budget_s": 5.0, "attention": "sdpa"}
    try:
        r = bench_model.run_config(spec)
    finally:
        torch.set_num_threads(threads)
    assert r["status"] == "ok"
    assert r["timed_iters"] == 2 and r["it_per_s"] > 0 and r["it_per_cpu_s"] > 0
    assert r["peak_mib"] >= 0 and r["n_params"] > 0
    from eegmamba.ops.dispatch import resolve_backend

    assert r["scan_backend"] == (resolve_backend("auto", "cpu") if model == "eegmamba" else "-")


def test_table_reports_ratio_and_failures(bench_model, capsys):
    ok = {"status": "ok", "peak_mib": 10.0}
    results = [
        {"model": "eegmamba", "n_chans": 1, "n_times": 2000, **ok, "it_per_s": 30.0,
         "it_per_cpu_s": 50.0},
        {"model": "conformer", "n_chans": 1, "n_times": 2000, **ok, "it_per_s": 10.0,
         "it_per_cpu_s": 20.0},
        {"model": "eegmamba", "n_chans": 1, "n_times": 40000, **ok, "it_per_s": 2.0},
        {"model": "conformer", "n_chans": 1, "n_times": 40000, "status": "OOM"},
    ]
    meta = {"batch_size": 8, "device_name": "test", "threads": 2, "memory_kind": "x",
            "channels": [1], "lengths": [2000, 40000]}
    bench_model.print_table(results, meta)
    out = capsys.readouterr().out
    assert "3.00x" in out and "2.50x" in out
    assert "OOM" in out and "inf (C: OOM)" in out


@pytest.mark.parametrize("argv,match", [
    (["--batch-size", "0"], "--batch-size must be positive"),
    (["--lengths", "0"], "--lengths and --channels must be positive"),
    (["--budget", "-1"], "--budget must be > 0"),
    (["--models", "transformer"], "invalid choice"),
])
def test_cli_rejects_bad_options(bench_model, capsys, argv, match):
    with pytest.raises(SystemExit) as exc:
        bench_model.main(["--device", "cpu", *argv])
    assert exc.value.code == 2
    assert match in capsys.readouterr().err


def test_latency_tool_times_and_writes_json(tmp_path):
    lat = _load("bench_inference_latency")
    threads = torch.get_num_threads()
    out = tmp_path / "lat.json"
    try:
        rc = lat.main(["--threads", "1", "--runs", "3", "--warmup", "1", "--out", str(out),
                       "--profile", "--profile-runs", "2"])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["meta"]["threads"] == 1 and data["meta"]["batch_size"] == 1
    for r in data["results"].values():
        assert r["runs"] == 3 and 0 < r["min_ms"] <= r["p50_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert r["thread_cpu_p50_ms"] > 0
    mamba = next(v for k, v in data["results"].items() if k.startswith("EEGMamba (eegmamba_single"))
    assert {"st_adaptive", "blocks.0", "blocks.1", "classifier"} <= set(mamba["module_p50_ms"])


def test_latency_tool_times_every_tokenizer_variant_in_one_run(tmp_path):
    lat = _load("bench_inference_latency")
    threads = torch.get_num_threads()
    out = tmp_path / "tok.json"
    try:
        rc = lat.main(["--variant", "tokenizers", "--n-times", "600", "--backends", "ref",
                       "--runs", "2", "--warmup", "0", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    res = json.loads(out.read_text())["results"]
    names = {k.split(" (")[1].split(",")[0] for k in res if k.startswith("EEGMamba")}
    assert names == {"eegmamba_single", "eegmamba_fb", "eegmamba_sep", "eegmamba_stack",
                     "eegmamba_grouped"}
    dense = res["EEGMamba (eegmamba_single, ref)"]
    for k, r in res.items():
        assert r["flops"] > 0 and r["n_params"] > 0
        if k.startswith("EEGMamba") and "single" not in k:
            assert r["n_params"] < dense["n_params"] / 3 and r["flops"] < dense["flops"]


def test_latency_common_percentiles_and_server_options(tmp_path):
    common = _load("_latency_common")
    r = common.percentiles(list(range(1, 101)))
    assert r == {"n": 100, "p50": 50.5, "p95": 95.05, "p99": 99.01, "max": 100.0}
    assert common.percentiles([])["p99"] is None
    with pytest.raises(ValueError, match="PlayerLSL pushes from the start"):
        with common.stream_server(tmp_path / "x.edf", "p", 1, source="mne-lsl"):
            pass
    assert common.mi_profile(4.0).window.length_s == 4.0
