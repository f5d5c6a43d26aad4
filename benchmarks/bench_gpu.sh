#!/usr/bin/env bash
# GPU check, prepared for the day a CUDA machine is at hand (< 8 minutes on one GPU).
#
#   bash benchmarks/bench_gpu.sh                 # from the repository root
#   WHEELS=/path/to/wheels bash benchmarks/bench_gpu.sh   # machine without network: wheels built beforehand
#
# 1. environment: a Python with a CUDA torch (the one on PATH if it has CUDA, else a venv in
#    $VENV with torch and this package from $WHEELS or PyPI); mamba-ssm (the fused CUDA scan) only
#    from a prebuilt wheel: PyPI has an sdist only (checked 2026-12-07 with `pip download --no-deps
#    mamba-ssm`: it needs CUDA and a compiler to build), so without a wheel in $WHEELS the fused
#    scan is skipped and said so; the model then runs the PyTorch reference scan on the GPU;
# 2. the GPU parity tests (pytest -m gpu);
# 3. the live benchmark, ONE process batching every stream's windows on the GPU (--workers 1, the
#    default on CUDA), at 1 / 64 / 256 / 512 replayed streams on loopback, streams staggered over
#    one hop (0.5 s) as independent headsets are;
# 4. one table (and $OUT/bench_gpu.json).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/bench_gpu_out}
STREAMS=${STREAMS:-1,64,256,512}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-5}
VENV=${VENV:-$ROOT/.venv-gpu}
mkdir -p "$OUT"
T0=$(date +%s)
step() { echo "== [$(( $(date +%s) - T0 )) s] $*"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi: not found"
nproc; python3 --version

PY=${PYTHON:-python3}
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    step "installing torch (CUDA) and the package into $VENV"
    python3 -m venv "$VENV"
    PY=$VENV/bin/python
    PIP=("$PY" -m pip install -q --disable-pip-version-check)
    if [ -n "${WHEELS:-}" ]; then PIP+=(--no-index --find-links "$WHEELS"); fi
    timeout 120 "${PIP[@]}" "torch==2.13.0" -e ".[test]" \
        || { echo "torch (CUDA) and the package could not be installed: give WHEELS=dir"; exit 1; }
fi
FUSED="skipped: no prebuilt mamba-ssm wheel (PyPI has an sdist only, which needs CUDA to build)"
if ! "$PY" -c "import mamba_ssm" 2>/dev/null; then
    if [ -n "${WHEELS:-}" ] && ls "$WHEELS"/mamba_ssm-*.whl >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --find-links "$WHEELS" mamba-ssm causal-conv1d \
            && FUSED="mamba-ssm from $WHEELS"
    fi
else
    FUSED="mamba-ssm already installed"
fi
"$PY" -c "import mamba_ssm" 2>/dev/null && FUSED="${FUSED/skipped*/mamba-ssm installed}"
"$PY" - <<'PY'
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, device "
      f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
PY
echo "fused CUDA scan: $FUSED"
"$PY" -c "from realtime.serve.supervisor import default_workers as d; print('eegmamba-live --workers default on cuda with 512 streams:', d(512, 'cuda'), '(one process batches every stream on the GPU)')"

step "GPU parity tests (pytest -m gpu)"
timeout 90 "$PY" -m pytest -q -m gpu tests -p no:cacheprovider \
    2>&1 | tail -n 15 | tee "$OUT/gpu_tests.txt"

step "live benchmark: --workers 1 on cuda, streams $STREAMS, stagger 0.5 s"
FILE=${FILE:-$ROOT/../shared/data/motor_imagery/S001R04.edf}
[ -f "$FILE" ] || FILE=$ROOT/eegmamba/assets/demo/S019R12.edf  # bundled: 64 ch @ 160 Hz, real EEG
timeout 240 "$PY" benchmarks/bench_latency.py --device cuda --workers 1 --streams "$STREAMS" \
    --stagger 0.5 --duration "$DURATION" --warmup "$WARMUP" --peers "" --file "$FILE" \
    --json "$OUT/bench_gpu.json" 2>&1 | tee "$OUT/bench_latency.txt" | grep -v '^|' || true

step "table"
"$PY" - "$OUT/bench_gpu.json" "$FUSED" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"device: {r.get('device_name', r['device'])}; fused scan: {sys.argv[2]}")
print("| streams | stagger s | workers | push→recv p50 ms | p95 | p99 | dec/s/stream | dropped | uncounted | CPU %/stream |")
print("|---|---|---|---|---|---|---|---|---|---|")
for x in r["results"]:
    s = x["stages_ms"]["push_to_received"]
    print(f"| {x['streams']} | {x['stagger_s']:g} | {x['workers']} | {s['p50']} | {s['p95']} | {s['p99']} | "
          f"{x['decisions_per_s_per_stream']:.2f} | {x['dropped'] or 0} | {x['uncounted']} | "
          f"{x['cpu_pct_per_stream']} |")
PY
step "done (outputs in $OUT)"
