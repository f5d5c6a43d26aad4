"""Player fixtures for the real-time tests: real recordings replayed on LSL loopback, unique names."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from realtime.replay.player import Replay


@pytest.fixture
def unique_name(request) -> str:
    """A stream name no other test (or engineer) uses: test name + random suffix."""
    return f"t-{request.node.name[:30]}-{uuid.uuid4().hex[:8]}".replace("[", "-").replace("]", "")


@pytest.fixture
def short_recording(shared_data) -> Path:
    """10 s of real scalp EEG (CHB-MIT chb01_03 ictal segment): 23 ch @ 256 Hz, one annotation."""
    return shared_data / "seizure" / "chb01_03_ictal10s.edf"


@pytest.fixture
def mi_recording(shared_data) -> Path:
    """EEGMMIDB S001R04: 64 ch @ 160 Hz, 125 s, 30 annotations T0/T1/T2."""
    return shared_data / "motor_imagery" / "S001R04.edf"


@pytest.fixture
def player(unique_name):
    """Factory ``player(path, **kwargs) -> Replay`` (not started; unique name); stopped at teardown."""
    made: list[Replay] = []

    def make(path, **kwargs) -> Replay:
        kwargs.setdefault("name", unique_name if not made else f"{unique_name}-{len(made)}")
        replay = Replay(path, **kwargs)
        made.append(replay)
        return replay

    yield make
    for replay in made:
        replay.stop()


@pytest.fixture(scope="session")
def find_stream():
    """``find_stream(name, timeout=5.0) -> pylsl.StreamInfo`` via one ContinuousResolver."""
    import time

    import pylsl

    resolver = pylsl.ContinuousResolver(forget_after=2.0)

    def find(name: str, timeout: float = 5.0) -> pylsl.StreamInfo:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [i for i in resolver.results() if i.name() == name]
            if found:
                return max(found, key=lambda i: i.created_at())
            time.sleep(0.02)
        raise AssertionError(f"LSL stream {name!r} not found within {timeout} s")

    return find


@pytest.fixture(scope="module")
def seizure_checkpoint(tmp_path_factory) -> Path:
    """A random-weight tiny EEGMamba checkpoint of the ``seizure`` profile (plumbing, not accuracy)."""
    import torch

    from eegmamba import TaskSpec, create_model
    from eegmamba.checkpoint import save_checkpoint
    from eegmamba.profiles import load_profile

    p = load_profile("seizure")
    torch.manual_seed(0)
    model = create_model("eegmamba_tiny", tasks=[TaskSpec(p.task, p.n_channels, p.window_samples,
                                                          len(p.classes), p.sfreq, p.channels.names,
                                                          p.classes)])
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "seizure", model.eval(), {})


@pytest.fixture(autouse=True)
def _no_live_process_left():
    """``eegmamba-live`` subprocesses a failing test did not stop are killed after it."""
    yield
    from tests.realtime.serve_helpers import kill_leftovers

    kill_leftovers()
