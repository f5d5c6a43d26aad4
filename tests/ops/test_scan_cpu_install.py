"""The fused CPU scan as installed on a user's machine: without numba (or with a broken one) the
scan falls back to the reference with exactly one warning line; from a read-only install the
compiled kernels are cached in a temp directory and loaded from there on the next run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from eegmamba.ops import dispatch

REPO = Path(__file__).resolve().parents[2]

USE_MODEL = textwrap.dedent("""
    import torch
    from eegmamba import TaskSpec, create_model
    from eegmamba.ops import dispatch, selective_scan, selective_scan_ref

    g = torch.Generator().manual_seed(0)
    u, B = torch.randn(1, 4, 9, generator=g), torch.randn(1, 2, 9, generator=g)
    A = -torch.ones(4, 2)
    for _ in range(2):
        assert torch.equal(selective_scan(u, u, A, B, B), selective_scan_ref(u, u, A, B, B))
    model = create_model("eegmamba_tiny", tasks=[TaskSpec("t", 3, 200, 2)])
    model(torch.randn(2, 3, 200)).sum().backward()
    assert dispatch.warmup() == 0.0
    try:
        dispatch.resolve_backend("cpu_fused", "cpu")
    except RuntimeError as err:
        print("FORCED:", err)
    print("OK")
""")


def _run(code: str, env: dict[str, str] | None = None, cwd: Path = REPO):
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


@pytest.mark.parametrize("how", ["missing", "broken"])
def test_without_numba_the_reference_runs_with_one_warning_line(tmp_path, how):
    if how == "missing":
        code = "import sys\nsys.modules['numba'] = None\n" + USE_MODEL
        env = None
    else:  # a numba whose import fails the way a broken llvmlite does
        fake = tmp_path / "numba"
        fake.mkdir()
        (fake / "__init__.py").write_text(
            "raise OSError('libllvmlite.so: cannot open shared object file')\n")
        code = USE_MODEL
        env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    r = _run(code, env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("OK")
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "fused CPU scan unavailable" in lines[0] and "backend='ref'" in lines[0]
    assert "pip install numba" in lines[0]
    forced = next(line for line in r.stdout.splitlines() if line.startswith("FORCED:"))
    assert "needs numba" in forced and "pip install numba" in forced


@pytest.mark.slow
@pytest.mark.skipif(not dispatch.has_cpu_fused(), reason="numba does not import here")
def test_read_only_install_caches_kernels_in_a_temp_dir(tmp_path):
    """No writable place beside the package nor in the home directory: the kernels are cached
    under $TMPDIR and the second process loads them instead of compiling."""
    site = tmp_path / "site"
    shutil.copytree(REPO / "eegmamba", site / "eegmamba",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # a *file* where numba's __pycache__ would go, and a home that is a file: not writable even
    # for root (chmod would not stop root)
    (site / "eegmamba" / "ops" / "__pycache__").write_text("")
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"), "TMPDIR": str(tmp),
           "PYTHONPATH": str(site)}
    os_env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    code = textwrap.dedent("""
        import numba, torch
        import eegmamba
        from eegmamba.ops import _scan_cpu
        from eegmamba.ops.selective_scan_cpu import selective_scan_bld
        assert eegmamba.__file__.startswith(%r), eegmamba.__file__
        u = torch.zeros(1, 3, 5)
        with torch.no_grad():
            selective_scan_bld(u, u, -torch.ones(5, 2), torch.zeros(1, 3, 4), 0, 2)
        stats = _scan_cpu.fwd_serial.stats
        print("CACHE", numba.config.CACHE_DIR, sum(stats.cache_hits.values()),
              sum(stats.cache_misses.values()))
    """ % str(site))
    runs = []
    for _ in range(2):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**os_env, **env, "OMP_NUM_THREADS": "1"}, cwd=tmp_path,
                           timeout=600)
        assert r.returncode == 0, r.stderr
        runs.append(next(line for line in r.stdout.splitlines() if line.startswith("CACHE")))
    (_, where, hits0, misses0), (_, _, hits1, misses1) = (run.split() for run in runs)
    assert Path(where).parent == tmp and any(Path(where).rglob("*.nbi"))
    assert (int(hits0), int(misses0)) == (0, 1)  # compiled, then written to the temp cache
    assert (int(hits1), int(misses1)) == (1, 0)  # loaded from it
    assert (site / "eegmamba" / "ops" / "__pycache__").is_file()
