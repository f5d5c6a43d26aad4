"""The timestamp model on synthetic timestamp sequences: naive push-stamping drivers with jitter,
holes, clock jumps, backlogs, drift and wrong declared rates."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.stream.timestamps import TimestampModel

FS = 160.0


def naive_driver(n, fs_true=FS, fs_stamp=FS, chunk=10, jitter_s=0.0, seed=0, t0=1000.0,
                 missing=(), jumps=(), stalls=()):
    """Blocks ``(raw stamps, arrival, true times, sample numbers)`` as a naive driver makes them.

    The device samples at ``fs_true``; every ``chunk`` samples the app pushes the chunk late by a
    random latency in [0, jitter_s], stamping the last sample with the push time and back-dating the
    others by ``1/fs_stamp`` (what liblsl's push_chunk does without timestamps). ``missing``: (start,
    stop) sample numbers the device loses; ``jumps``: (sample, seconds) the source clock jumps by from
    that sample on (samples keep arriving on time); ``stalls``: (sample, seconds) the app stops
    pushing before that sample, then pushes the backlog chunk by chunk at once.
    """
    rng = np.random.default_rng(seed)
    true = t0 + np.arange(n) / fs_true
    keep = np.ones(n, bool)
    for a, b in missing:
        keep[a:b] = False
    clock = np.zeros(n)
    for k, dt in jumps:
        clock[k:] += dt
    stall_until = {k: true[k] + d for k, d in stalls}
    blocks, pending, held = [], [], None
    for start in range(0, n, chunk):
        ks = [k for k in range(start, min(start + chunk, n)) if keep[k]]
        if not ks:
            continue
        for k in ks:
            if k in stall_until:
                held = stall_until[k]
        push = true[ks[-1]] + rng.uniform(0, jitter_s)
        if held is not None and push < held:
            pending.append(ks)
            continue
        for group in pending + [ks]:
            at = push if held is None else max(push, held)
            stamps = at + clock[group] - (len(group) - 1 - np.arange(len(group))) / fs_stamp
            blocks.append((stamps, at + 0.001, true[group], np.array(group)))
        pending, held = [], None
    return blocks


def run(model, blocks, defer=True):
    """Feed blocks as the acquisition does: a deferred block is pushed again with the next one."""
    out, breaks, nums, pending = [], [], [], None
    for stamps, arrival, _, ks in blocks:
        if pending is not None:
            stamps, ks, arrival = np.concatenate([pending[0], stamps]), np.concatenate([pending[1], ks]), pending[2]
        res = model.push(stamps, arrival, may_defer=defer and pending is None)
        if res is None:
            pending = (stamps, ks, arrival)
            continue
        pending = None
        ts, b = res
        out.append(ts)
        breaks += [(int(ks[i]), r) for i, r in b]
        nums.append(ks)
    return np.concatenate(out), breaks, np.concatenate(nums)


def test_clean_stream_is_reproduced_exactly():
    blocks = naive_driver(4000)
    out, breaks, _ = run(TimestampModel(FS), blocks)
    raw = np.concatenate([b[0] for b in blocks])
    assert breaks == [] and np.abs(out - raw).max() < 1e-9


@pytest.mark.parametrize("jitter_ms", [20, 40])
def test_push_jitter_gives_regular_stamps_and_no_breaks(jitter_ms):
    blocks = naive_driver(160 * 60, jitter_s=jitter_ms / 1000)
    model = TimestampModel(FS)
    out, breaks, _ = run(model, blocks)
    true = np.concatenate([b[2] for b in blocks])
    raw = np.concatenate([b[0] for b in blocks])
    assert breaks == []
    steps = np.diff(out) * FS - 1  # relative step error: the windower tolerates 0.5
    assert np.abs(steps).max() < 0.15 and np.abs(steps[320:]).max() < 0.06
    assert np.diff(raw).min() < 0  # while the raw chunks overlap
    err = out - true  # within the latency band, and close to its middle after the start
    assert err.min() > -0.002 and err.max() < jitter_ms / 1000
    assert abs(np.median(err[len(err) // 2:]) - jitter_ms / 2000) < 0.004
    assert model.rate == pytest.approx(FS, rel=2e-3) and model.settled
    assert model.jitter_p95() == pytest.approx(jitter_ms / 2000 * 0.95, rel=0.25)


@pytest.mark.parametrize("jitter_ms", [0, 40])
@pytest.mark.parametrize("hole_s", [0.5, 2.0])
def test_missing_samples_are_one_gap_at_the_right_sample(jitter_ms, hole_s):
    a = 160 * 20 + 3
    blocks = naive_driver(160 * 40, jitter_s=jitter_ms / 1000, missing=[(a, a + int(hole_s * FS))])
    model = TimestampModel(FS)
    out, breaks, nums = run(model, blocks)
    true = np.concatenate([b[2] for b in blocks])
    first_after = a + int(hole_s * FS)
    assert breaks == [(first_after, "gap")]
    assert model.n_gaps == 1 and model.gap_s == pytest.approx(hole_s, abs=0.03 + jitter_ms / 1000)
    after = nums >= first_after
    assert np.abs((out - true)[after]).max() < 0.005 + jitter_ms / 1000  # on the true timeline
    assert np.abs(np.diff(out[after]) - 1 / FS).max() < 0.06 / FS


@pytest.mark.parametrize("jitter_ms", [0, 40])
def test_clock_jumps_either_way_are_jumps(jitter_ms):
    blocks = naive_driver(160 * 40, jitter_s=jitter_ms / 1000, jumps=[(1600, 5.0), (3205, -3.0)])
    model = TimestampModel(FS)
    out, breaks, _ = run(model, blocks)
    assert breaks == [(1600, "jump"), (3205, "jump")] and model.n_jumps == 2 and model.n_gaps == 0
    raw = np.concatenate([b[0] for b in blocks])
    assert np.abs(out[-1000:] - raw[-1000:]).max() < 0.005 + jitter_ms / 1000  # follows the clock


def test_backlog_pulled_as_one_block_is_no_break():
    """The app stops pushing for 0.8 s, then pushes 13 chunks at once, each stamped 'now': the first
    ones land up to 0.8 s late, the last on time. Pulled together (the acquisition pulls all that is
    there), nothing is missing and there is no break; the stamps are put back on the line."""
    blocks = naive_driver(160 * 30, jitter_s=0.01, stalls=[(1605, 0.8)])
    merged, group = [], []
    for b in blocks:  # the consumer pulls the pushes of one instant together
        if group and b[1] != group[-1][1]:
            merged.append(tuple(np.concatenate([g[i] for g in group]) if i != 1 else group[-1][1]
                                for i in range(4)))
            group = []
        group.append(b)
    merged.append(tuple(np.concatenate([g[i] for g in group]) if i != 1 else group[-1][1]
                        for i in range(4)))
    assert max(len(m[0]) for m in merged) > 100
    raw, true = np.concatenate([b[0] for b in merged]), np.concatenate([b[2] for b in merged])
    assert (raw - true).max() > 0.7
    model = TimestampModel(FS)
    out, breaks, _ = run(model, merged)
    assert breaks == [] and np.abs(out - true).max() < 0.02
    assert model.rate == pytest.approx(FS, rel=2e-3)


def test_one_percent_drift_is_followed():
    blocks = naive_driver(160 * 60, fs_true=FS * 1.01, fs_stamp=FS, jitter_s=0.02)
    model = TimestampModel(FS)
    out, breaks, _ = run(model, blocks)
    assert breaks == [] and model.rate == pytest.approx(FS * 1.01, rel=2e-3)


def test_wrong_declared_rate_is_measured_without_false_breaks():
    """Declares 128 Hz (and back-dates by 1/128) but samples at 160 Hz."""
    blocks = naive_driver(160 * 20, fs_true=160.0, fs_stamp=128.0, jitter_s=0.02)
    model = TimestampModel(128.0)
    settled_at = None
    breaks = []
    for stamps, arrival, _, ks in blocks:
        _, b = model.push(stamps, arrival)
        breaks += b
        if settled_at is None and model.settled:
            settled_at = ks[-1] / 160.0
    assert breaks == [] and model.rate == pytest.approx(160.0, rel=3e-3)
    assert settled_at is not None and settled_at < 5.0


def test_hole_under_the_jitter_floor_is_absorbed_not_a_false_break():
    """A 50 ms hole in 40 ms of push jitter cannot be told from jitter: documented limit."""
    a = 160 * 20
    blocks = naive_driver(160 * 40, jitter_s=0.04, missing=[(a, a + 8)])
    out, breaks, _ = run(TimestampModel(FS), blocks)
    assert breaks == []
    assert np.abs(np.diff(out) * FS - 1).max() < 0.15


def test_several_breaks_in_one_block():
    """Clean 1 s, then stamps 0.5 s ahead, then 10 samples back in the past, all pulled at once."""
    model = TimestampModel(100.0)
    ts = 50.0 + np.arange(100) / 100.0
    model.push(ts[:50], 50.5)
    raw = np.concatenate([ts[50:], ts + 1.5, ts[:10] + 2.2])
    out, breaks = model.push(raw, 50.6)
    assert breaks == [(50, "jump"), (150, "jump")] and model.n_jumps == 2
    np.testing.assert_allclose(out, raw, atol=1e-9)  # clean stretches keep their exact stamps
    out, breaks = model.push(ts[10:20] + 2.2, 50.7)
    assert breaks == [] and np.allclose(out, ts[10:20] + 2.2)


def test_gap_vs_jump_from_arrival():
    """The same +0.5 s step is a gap when the block also arrived 0.5 s late, a jump when not."""
    for arrival_pause, reason in ((0.55, "gap"), (0.05, "jump")):
        model = TimestampModel(100.0)
        ts = np.arange(300) / 100.0
        for k in range(0, 100, 10):
            model.push(ts[k:k + 10], ts[k + 9])
        _, breaks = model.push(ts[150:160], ts[99] + arrival_pause)
        assert breaks == [(0, reason)]


def test_one_late_chunk_is_deferred_not_a_break():
    """Under load one chunk is pushed 0.3 s late, alone; the next ones come on time. Deferred until
    the next block, it is seen to catch up: no break (without deferral: a gap, then a jump)."""
    blocks = naive_driver(160 * 20, jitter_s=0.01)
    k = next(i for i, b in enumerate(blocks) if b[3][0] >= 1600)
    stamps, arrival, true, ks = blocks[k]
    blocks[k] = (stamps + 0.3, arrival + 0.3, true, ks)
    _, breaks, _ = run(TimestampModel(FS), blocks)
    assert breaks == []
    _, breaks, _ = run(TimestampModel(FS), blocks, defer=False)
    assert [r for _, r in breaks] == ["gap", "jump"]


def test_deferred_decision_keeps_its_counters_clean():
    model = TimestampModel(100.0)
    ts = np.arange(200) / 100.0
    model.push(ts[:50], 0.5)
    assert model.push(ts[100:110] + 0.0, 1.1, may_defer=True) is None  # 0.5 s ahead: undecided
    assert (model.n, model.n_gaps, model.n_jumps) == (50, 0, 0)
    out, breaks = model.push(np.concatenate([ts[100:110], ts[110:120]]), 1.1)
    assert breaks == [(0, "gap")] and model.n_gaps == 1 and model.n == 70


def test_fast_percentile_and_steps_equal_numpys():
    """The per-block helpers give exactly numpy's values (the break threshold is unchanged)."""
    from realtime.stream.timestamps import percentile_linear, steps_after

    rng = np.random.default_rng(0)
    for n in [1, 2, 3, 19, 20, 21, 255, 256]:
        for _ in range(20):
            a = np.abs(rng.standard_t(3, size=n)) * 1e-3
            assert percentile_linear(a, 95.0) == float(np.percentile(a, 95))
            raw = 100.0 + np.cumsum(rng.uniform(0.001, 0.01, n))
            np.testing.assert_array_equal(steps_after(raw, 99.99), np.diff(raw, prepend=99.99))
