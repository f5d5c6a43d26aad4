"""``benchmarks/bench_gpu.sh``'s CPU-side parts, for the day a GPU machine runs it: the script
parses, and every ``bench_latency.py`` flag it passes is one the benchmark takes."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_gpu.sh"


def test_the_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_the_benchmark_takes_the_flags_the_script_passes():
    from benchmarks.bench_latency import _parser

    text = SCRIPT.read_text().replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if "benchmarks/bench_latency.py" in ln)
    args = shlex.split(line.split("benchmarks/bench_latency.py", 1)[1].split("2>&1")[0])
    values = {"$STREAMS": "1,64,256,512", "$DURATION": "15", "$WARMUP": "5", "$FILE": "x.edf",
              "$OUT": "/tmp"}
    args = [re.sub(r"\$\w+", lambda m: values[m.group(0)], a) for a in args]
    ns = _parser().parse_args(args)
    assert ns.device == "cuda" and ns.workers == "1" and ns.streams == "1,64,256,512"
    assert ns.stagger == "0.5" and ns.peers == "" and not ns.in_process
