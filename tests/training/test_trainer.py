"""The training loop on small synthetic arrays: determinism, resume after an interruption, DDP."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from eegmamba import TaskSpec, create_model
from eegmamba.training.trainer import TaskData, TrainConfig, Trainer, predict_proba


def _data(n=24, C=2, T=200, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    t = np.arange(T) / 200.0
    X = rng.normal(size=(n, C, T)) + np.where(y[:, None, None] == 1, np.sin(2 * np.pi * 10 * t), 0)
    return TaskData(X.astype(np.float32), y.astype(np.int64))


def _model(seed=0):
    torch.manual_seed(seed)
    return create_model("eegmamba_tiny", tasks=[TaskSpec("t", 2, 200, 2)])


def _fit(seed=0, epochs=2, **kw):
    cfg = TrainConfig(epochs=epochs, batch_size=8, seed=seed)
    tr = Trainer(_model(seed), {"t": _data()}, {"t": _data(8, seed=1)}, cfg, torch.device("cpu"), **kw)
    return tr, tr.fit()


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_weights_other_seed_differs():
    _, a = _fit(seed=3)
    _, b = _fit(seed=3)
    _, c = _fit(seed=4)
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    assert _same(a.best_state, b.best_state)
    assert not _same(a.best_state, c.best_state)
    assert len(a.history) == 2 and all(np.isfinite(r["val_loss"]) for r in a.history)


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    state = tmp_path / "state.pt"
    _, ref = _fit(seed=5, epochs=3)
    tr = Trainer(_model(5), {"t": _data()}, {"t": _data(8, seed=1)}, TrainConfig(epochs=3, batch_size=8, seed=5),
                 torch.device("cpu"), state_path=state, on_epoch_end=lambda epoch, rec: epoch == 1)
    with pytest.raises(KeyboardInterrupt):
        tr.fit()
    assert state.is_file()
    assert tr.epoch == 1  # stopped after the first epoch, state saved there
    fresh = Trainer(_model(99), {"t": _data()}, {"t": _data(8, seed=1)},
                    TrainConfig(epochs=3, batch_size=8, seed=5), torch.device("cpu"), state_path=state)
    fresh.load_state(state)
    res = fresh.fit()
    assert [r["train_loss"] for r in res.history] == [r["train_loss"] for r in ref.history]
    assert res.best_epoch == ref.best_epoch
    assert _same(res.best_state, ref.best_state)


def test_predict_proba_rows_sum_to_one():
    tr, fit = _fit(epochs=1)
    p = predict_proba(tr.core, _data(5).X, "t", torch.device("cpu"), batch_size=2)
    assert p.shape == (5, 2) and np.allclose(p.sum(1), 1)


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from eegmamba.training.distributed import cleanup, init_from_env

    info = init_from_env(torch.device("cpu"))
    assert info.world_size == world and info.rank == rank
    cfg = TrainConfig(epochs=2, batch_size=8, seed=0)
    tr = Trainer(_model(0), {"t": _data()}, {"t": _data(8, seed=1)}, cfg, torch.device("cpu"), info)
    fit = tr.fit()
    torch.save({"state": fit.best_state, "history": fit.history}, f"{out}/rank{rank}.pt")
    cleanup(info)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_process_ddp_with_gloo(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    # DDP keeps the replicas identical and both ranks see the same reduced losses
    assert _same(r0["state"], r1["state"])
    assert r0["history"] == [dict(h, seconds=r0["history"][i]["seconds"]) for i, h in enumerate(r1["history"])]
    # and the weights moved away from the initial ones
    assert not _same(r0["state"], {k: v for k, v in _model(0).state_dict().items()})


def test_history_logs_both_loss_parts_and_val_loss_is_pure_cross_entropy():
    tr, fit = _fit(seed=2, epochs=1)
    r = fit.history[0]
    assert r["train_aux"] > 0 and r["train_aux_balance"] >= 0 and r["train_aux_z"] > 0
    assert r["train_loss"] == pytest.approx(r["train_ce"] + r["train_aux"], rel=1e-6)
    w = tr.core.config.aux_loss_weight
    assert r["train_aux"] == pytest.approx(w * (r["train_aux_balance"] + r["train_aux_z"]), rel=1e-5)
    # val_loss is the cross-entropy of the (eval-mode) model on the validation windows, no aux term
    val = _data(8, seed=1)
    p = predict_proba(tr.core, val.X, "t", torch.device("cpu"))
    ce = float(-np.log(p[np.arange(len(val.y)), val.y]).mean())
    assert r["val_loss"] == pytest.approx(ce, rel=1e-4)
