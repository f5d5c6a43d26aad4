"""Re-sent samples (a driver pushing a chunk again: same timestamps, same values) are dropped and
counted, never taken for a clock jump; a real jump stays a jump. Unit tests on the filter and the
timestamp model, then end to end on loopback with a scripted outlet (``Resend``)."""

from __future__ import annotations

import numpy as np
import pytest

from eegmamba.testing.fault_outlet import Jump, Resend
from realtime.stream.duplicates import DuplicateFilter
from realtime.stream.timestamps import TimestampModel
from tests.realtime.test_faults import FS, Run, _spanning, checkpoint, recording  # noqa: F401

FS_UNIT = 160.0


def _blocks(n_blocks=60, chunk=10, c=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 20, (c, n_blocks * chunk))
    t = 50.0 + np.arange(n_blocks * chunk) / FS_UNIT
    return [(x[:, a:a + chunk], t[a:a + chunk]) for a in range(0, n_blocks * chunk, chunk)]


def _model_run(blocks, dedup: DuplicateFilter | None):
    """Push blocks (arrival = last stamp + 2 ms) through an optional filter and a timestamp model;
    return the model, the samples kept and the breaks."""
    model = TimestampModel(FS_UNIT)
    kept, breaks = [], []
    for x, t in blocks:
        if dedup is not None:
            x, t, _ = dedup(x, t)
            if t.size == 0:
                continue
        _, b = model.push(t, float(t.max()) + 0.002)
        breaks += b
        kept.append(x)
    return model, np.concatenate(kept, axis=1), breaks


def test_resent_chunks_are_dropped_counted_and_no_break():
    blocks = _blocks()
    resent = []
    for k, block in enumerate(blocks):
        resent.append(block)
        if k in (9, 24, 39):  # a chunk arrives again right after itself
            resent.append(block)
        if k == 49:  # the last 15 samples (two chunks) again
            resent.append((np.concatenate([blocks[48][0], block[0]], 1)[:, 5:],
                           np.concatenate([blocks[48][1], block[1]])[5:]))
    assert _model_run(resent, None)[1].shape[1] > 600  # without the filter they would be taken in...
    naive = _model_run(resent, None)[0]
    assert naive.n_jumps > 0  # ...as clock jumps (the bug)
    dedup = DuplicateFilter(4, 320)
    model, kept, breaks = _model_run(resent, dedup)
    assert dedup.n_duplicates == 3 * 10 + 15
    np.testing.assert_array_equal(kept, np.concatenate([b[0] for b in blocks], axis=1))
    assert breaks == [] and model.n_jumps == 0 and model.n_gaps == 0


def test_a_resend_inside_one_pulled_block_and_a_partly_new_one():
    (x1, t1), (x2, t2) = _blocks(2)
    dedup = DuplicateFilter(4, 320)
    x, t, n = dedup(np.concatenate([x1, x1], 1), np.concatenate([t1, t1]))  # pulled together
    assert n == 10 and np.array_equal(x, x1) and np.array_equal(t, t1)
    x, t, n = dedup(np.concatenate([x1[:, 6:], x2], 1), np.concatenate([t1[6:], t2]))
    assert n == 4 and np.array_equal(x, x2) and np.array_equal(t, t2)


def test_same_stamps_new_values_is_a_real_jump_back():
    blocks = _blocks()
    # after block 30 the clock steps back one chunk: block 31 comes with block 30's stamps
    replayed = blocks[:31] + [(bx, bt - 10 / FS_UNIT) for bx, bt in blocks[31:]]
    dedup = DuplicateFilter(4, 320)
    model, kept, breaks = _model_run(replayed, dedup)
    assert dedup.n_duplicates == 0 and kept.shape[1] == 600
    assert model.n_jumps == 1 and [r for _, r in breaks] == ["jump"]


def test_push_stamped_overlap_with_new_values_is_kept():
    """Push-stamped chunks overlap in time (earlier stamps, other samples): nothing is dropped."""
    blocks = _blocks()
    jittered = [(x, t + 0.02 * (k % 3)) for k, (x, t) in enumerate(blocks)]
    dedup = DuplicateFilter(4, 320)
    _, kept, _ = _model_run(jittered, dedup)
    assert dedup.n_duplicates == 0 and kept.shape[1] == 600


@pytest.mark.slow
def test_resent_chunks_on_loopback_keep_decisions_coming(checkpoint, recording, unique_name):  # noqa: F811
    """7 chunks re-sent (as in the issue: 62.5 ms each at 160 Hz) and one real jump back: the copies
    are dropped and counted, no window is lost to them, the jump still drops its windows."""
    resends = [Resend(int(s * FS), 10) for s in (4, 5, 6, 7.5, 9, 10.5, 12)]
    r = Run(unique_name, checkpoint, recording, 20.0, speed=2.0,
            events=[*resends, Jump(int(15 * FS), -2.0)])
    assert r.outlet.n_resent == 70
    assert r.health.n_duplicates == 70
    assert r.health.n_jumps == 1 and r.health.n_gaps == 0
    assert r.drops.get("jump", 0) == _spanning(int(15 * FS))  # the real jump only
    assert set(r.drops) <= {"jump", "stale", "shutdown"}
    assert r.settled and r.n_windows == r.output.seq + sum(r.drops.values())
    during = [d for d in r.decisions if r.outlet.times[int(4 * FS)] < d.t_end
              and d.t_start < r.outlet.times[int(12 * FS)]]
    assert len(during) >= 12  # decisions kept coming through the re-sends (8 s of stream, hop 0.5 s)
