"""The live loop's parts without LSL: the pipeline's timing (no look-ahead; ``flush`` and ``due``
as priming uses them), the inference engine (checkpoints from before the causal resampler flagged,
batches split over threads) and the batch cost model. The loop end to end is ``test_live.py``."""

from __future__ import annotations

import numpy as np
import pytest

from eegmamba import TaskSpec, create_model
from eegmamba.checkpoint import save_checkpoint
from eegmamba.data.readers import read_recording
from eegmamba.profiles import load_profile
from realtime.loop.inference import InferenceEngine
from realtime.loop.pipeline import ProfilePipeline
from tests.realtime.test_live import _checkpoint, _profile_file

pytestmark = pytest.mark.timeout(120)


def test_window_comes_out_with_the_chunk_holding_its_last_sample(mi_recording):
    """No look-ahead in the live pipeline: every window is returned by the very ``push_many`` call
    that delivers its last input sample, and carries that chunk's arrival and last timestamp."""
    profile = load_profile("motor_imagery")
    rec = read_recording(mi_recording, profile)
    x = rec.data[:, : int(30 * rec.sfreq)]
    t = 7.0 + np.arange(x.shape[1]) / rec.sfreq
    pipe = ProfilePipeline(profile, "s", list(profile.channels.names), rec.sfreq, "m")
    rng = np.random.default_rng(0)
    a, n_chunk, n_windows = 0, 0, 0
    while a < x.shape[1]:
        block = []  # 1-3 chunks of 1-25 samples, arrival = chunk number
        for _ in range(int(rng.integers(1, 4))):
            k = int(rng.integers(1, 26))
            block.append((x[:, a:a + k], t[a:a + k], float(n_chunk), a))
            a, n_chunk = a + k, n_chunk + 1
        out = pipe.push_many([c[:3] for c in block], clock=lambda: 0.5)
        for p in out:
            last = int(np.floor((p.window.t_end - 7.0) * rec.sfreq + 1e-6))  # newest input <= t_end
            owner = [c for c in block if c[3] <= last < c[3] + c[0].shape[1]]
            assert owner, "a window came out after the chunk holding its last input sample"
            assert p.arrival == owner[0][2] and p.source_time == t[last]
            assert p.completed == block[-1][2] and p.preprocessed == 0.5
        n_windows += len(out)
    length, hop = profile.window.length_s, profile.window.hop_s
    assert n_windows == pipe.n_windows == 1 + round((30 - length) / hop)  # the last one too


def test_checkpoint_from_before_the_causal_resampler_is_flagged(tmp_path, caplog):
    from eegmamba.resampling import resampler_metadata

    p = load_profile("motor_imagery")
    spec = TaskSpec(p.task, p.n_channels, p.window_samples, len(p.classes), p.sfreq,
                    p.channels.names, p.classes)
    model = create_model("eegmamba_tiny", tasks=[spec]).eval()
    pre = {"filter": {"l_freq": 0.1, "h_freq": 50.0}, "sfreq": 200.0}
    old = save_checkpoint(tmp_path / "old", model, {"preprocessing": pre})
    new = save_checkpoint(tmp_path / "new", model,
                          {"preprocessing": {**pre, "resampler": resampler_metadata(50.0)}})
    engine = InferenceEngine("cpu")
    with caplog.at_level("WARNING", logger="realtime.loop.inference"):
        engine.load(new)
        assert not caplog.records
        engine.load(old)
    assert len(caplog.records) == 1 and "before the causal resampler" in caplog.records[0].message


def test_batch_cost_fits_overhead_and_per_window_cost():
    from realtime.loop.live import BatchCost

    c = BatchCost()
    assert c.coefficients() == (0.0, 0.0)  # nothing measured yet (the loop starts with batches of 1)
    c.add(1, 0.005)  # one batch size seen: cost per window only
    assert c.coefficients() == (0.0, 0.005) and c.fits(0.06) == 12
    for n in (1, 4, 16, 32, 8, 2):
        c.add(n, 0.003 + 0.002 * n)
    a, b = c.coefficients()
    assert 0.002 < a < 0.0045 and 0.0018 < b < 0.0022
    assert 27 <= c.fits(0.06) <= 29  # (0.06 - a) / b
    noisy = BatchCost()
    for n, t in ((1, 0.010), (8, 0.012), (2, 0.011)):  # a busy machine: slope ~0, mean per window
        noisy.add(n, t)
    a, b = noisy.coefficients()
    assert b > 0 and noisy.fits(0.06) >= 1


def test_split_batches_give_the_same_probabilities(tmp_path):
    """``batch_threads=2``: a big batch classified in two parts at once equals one batch."""
    prof = _profile_file(tmp_path, "motor_imagery")
    ck = _checkpoint(tmp_path, prof)
    one, two = InferenceEngine("cpu"), InferenceEngine("cpu", batch_threads=2)
    try:
        key = one.load(ck).key
        two.load(ck)
        m = one.models[key]
        x = np.random.default_rng(0).standard_normal((9, m.n_chans, m.n_times)).astype(np.float32)
        np.testing.assert_allclose(two.infer(key, x), one.infer(key, x), rtol=1e-6, atol=1e-7)
        assert two.infer(key, x[:3]).shape == (3, len(m.class_names))  # small: not split
    finally:
        two.close()


def test_flush_gives_the_same_windows_and_due_predicts_the_completing_chunk(mi_recording):
    """``flush`` (preprocess the held chunks early, as priming does) changes no window; with chunks
    of a steady size and pace, ``due`` is the arrival of the chunk that completes the next window."""
    profile = load_profile("motor_imagery")
    rec = read_recording(mi_recording, profile)
    x = rec.data[:, : int(20 * rec.sfreq)]
    t = 3.0 + np.arange(x.shape[1]) / rec.sfreq
    plain = ProfilePipeline(profile, "s", list(profile.channels.names), rec.sfreq, "m")
    flushed = ProfilePipeline(profile, "s", list(profile.channels.names), rec.sfreq, "m")
    rng = np.random.default_rng(1)
    n = 10
    windows = {id(plain): [], id(flushed): []}
    predicted, completing, n_flushed = None, [], 0
    for i, a in enumerate(range(0, x.shape[1] - n + 1, n)):
        chunk = (x[:, a:a + n], t[a:a + n], t[a + n - 1] + 0.002)  # arrives 2 ms after its last sample
        out = plain.push_many([chunk])
        windows[id(plain)] += out
        if out:
            completing.append((predicted, chunk[2]))
        predicted = plain.due()
        windows[id(flushed)] += flushed.push_many([chunk])
        if rng.random() < 0.5:
            n_flushed += bool(flushed._held)
            assert flushed.flush() == []  # never completes a window: that chunk has not come
        assert flushed.due() == pytest.approx(predicted, abs=1e-9)
    assert n_flushed > 10 and len(windows[id(plain)]) == 1 + round((20 - 3.0) / 0.5)
    for p, q in zip(windows[id(plain)], windows[id(flushed)], strict=True):
        assert p.window.t_start == q.window.t_start and p.arrival == q.arrival
        np.testing.assert_array_equal(p.window.data, q.window.data)
    assert len(completing) == len(windows[id(plain)])
    for want, got in completing[1:]:
        assert want == pytest.approx(got, abs=1e-9)
