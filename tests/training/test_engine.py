"""The one training engine's parts on tiny models and small synthetic arrays: parameter groups,
schedule, clipping, EMA, batch clipping, selection, validation cadence, resume, the recipe file."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from eegmamba._checks import UserInputError
from eegmamba.baselines.eegnet import EEGNet, EEGNetConfig
from eegmamba.training.engine import Engine, Recipe, TaskData, load_recipe
from eegmamba.training.engine.ema import EMA
from eegmamba.training.engine.loop import effective_batch
from eegmamba.training.engine.optim import build_optimizer, lr_factor, no_decay, param_groups
from tests.training.test_trainer import _data, _model  # the same tiny two-class task and model

CPU = torch.device("cpu")


def test_param_groups_skip_exactly_norms_biases_A_log_D_and_the_class_token():
    model = _model()
    skip = no_decay(model)
    norms = {f"{m}.{p}" for m, mod in model.named_modules()
             if isinstance(mod, (nn.LayerNorm, nn.modules.batchnorm._NormBase))
             for p, _ in mod.named_parameters(recurse=False)}
    expected = {n for n, _ in model.named_parameters()
                if n.endswith(("bias", ".A_log", ".D")) or n == "st_adaptive.cls_token"} | norms
    assert skip == expected
    assert any(n.endswith(".A_log") for n in skip) and "st_adaptive.cls_token" in skip
    assert any(n.endswith("norm.weight") for n in skip)
    # conv / linear weights and the task embedding are decayed
    assert "st_adaptive.tokenizer.wide.conv.weight" not in skip
    groups = param_groups(model, Recipe(weight_decay=0.03))
    decay = {id(p) for g in groups if g["weight_decay"] == 0.03 for p in g["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[i] for i in decay} == set(names.values()) - skip
    assert all(g["weight_decay"] == 0.03 for g in param_groups(model, Recipe.paper(weight_decay=0.03)))
    # EEGNet: its BatchNorms and the dense bias
    net = EEGNet(EEGNetConfig(2, 200, 2))
    assert no_decay(net) == {n for n, _ in net.named_parameters() if n.startswith("bn") or
                             n == "dense.bias"}


def test_schedule_warms_up_linearly_then_cosine_to_the_floor():
    r = Recipe(warmup_frac=0.1, final_lr_frac=0.01)
    f = [lr_factor(r, s, 100) for s in range(100)]
    assert f[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert max(f) == pytest.approx(1.0) and f[-1] == pytest.approx(0.01)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))  # non-increasing after warmup
    assert f[55] == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 45 / 89)))
    assert all(lr_factor(Recipe.paper(), s, 100) == 1.0 for s in range(100))


def test_gradient_clipping_bounds_the_update_norm():
    def first_update(clip):
        model = _model(1)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        grads = {}
        eng = Engine(model, {"t": _data(8)}, None, Recipe(clip=clip, epochs=1, max_steps=1, ema=0,
                     warmup_frac=0, batch_size=8, min_steps_per_epoch=1), CPU)
        orig = eng.opt.step

        def step(*a, **k):  # the gradient norm the optimiser sees
            grads["norm"] = float(torch.norm(torch.stack([p.grad.norm() for g in eng.opt.param_groups
                                                            for p in g["params"] if p.grad is not None])))
            return orig(*a, **k)

        eng.opt.step = step
        eng.fit()
        return grads, before

    seen, _ = first_update(clip=1e-3)
    unclipped, _ = first_update(clip=0.0)
    assert seen["norm"] == pytest.approx(1e-3, rel=1e-3)
    assert unclipped["norm"] > 1e-2  # so the clip above really acted


def test_ema_tracks_with_warmup_and_is_what_is_kept():
    lin = nn.Linear(2, 1)
    ema = EMA(lin, 0.999)
    w0 = lin.weight.detach().clone()
    with torch.no_grad():
        lin.weight.add_(1.0)
    ema.update()  # first update: decay min(0.999, 1/10) = 0.1
    assert torch.allclose(ema.shadow["weight"], 0.1 * w0 + 0.9 * (w0 + 1))
    with ema.applied():
        assert torch.equal(lin.weight, ema.shadow["weight"])
    assert torch.equal(lin.weight, w0 + 1)
    # in a fit, the kept state is the EMA's (not the last raw weights)
    eng = Engine(_model(), {"t": _data()}, None, Recipe(epochs=2, ema=0.9), CPU)
    fit = eng.fit()
    key = "st_adaptive.tokenizer.wide.conv.weight"
    assert torch.equal(fit.best_state[key], eng.ema.shadow[key])
    assert not torch.equal(fit.best_state[key], eng.core.state_dict()[key])


def test_batch_is_clipped_to_the_training_set_and_says_so():
    bs, note = effective_batch(Recipe(batch_size=128, min_steps_per_epoch=1), {"t": 105})
    assert bs == 105 and "105 training windows" in note
    bs, note = effective_batch(Recipe(batch_size=128), {"t": 105})  # at least 4 steps per epoch
    assert bs == 27 and "4 steps per epoch" in note
    assert effective_batch(Recipe(batch_size=32), {"t": 1000}) == (32, None)
    eng = Engine(_model(), {"t": _data(24)}, None, Recipe(batch_size=128, epochs=1), CPU)
    assert eng.batch_size == 6 and eng.steps_per_epoch == 4 and eng.result.notes


def test_validation_every_k_steps_and_selection_on_the_declared_metric():
    recipe = Recipe(epochs=2, batch_size=4, eval_every=2, select="auroc", min_steps_per_epoch=1)
    eng = Engine(_model(), {"t": _data(24)}, {"t": _data(8, seed=1)}, recipe, CPU)
    fit = eng.fit()
    assert eng.steps_per_epoch == 6
    assert [e["step"] for e in fit.evals] == [2, 4, 6, 8, 10, 12]
    top = max(e["val_auroc"] for e in fit.evals)  # ties: the lower validation loss, then the first
    best = min((e for e in fit.evals if e["val_auroc"] == top), key=lambda e: e["val_loss"])
    assert fit.best_step == best["step"] and fit.best_score == pytest.approx(best["val_auroc"])
    # default cadence: evals_per_epoch per epoch, the last one at the epoch's end
    eng = Engine(_model(), {"t": _data(24)}, {"t": _data(8, seed=1)},
                 Recipe(epochs=1, batch_size=4, min_steps_per_epoch=1, evals_per_epoch=3), CPU)
    assert [e["step"] for e in eng.fit().evals] == [2, 4, 6]
    # val_loss selection keeps the lowest loss
    eng = Engine(_model(), {"t": _data(24)}, {"t": _data(8, seed=1)},
                 Recipe(epochs=2, batch_size=8, select="val_loss", ema=0), CPU)
    fit = eng.fit()
    assert fit.best_score == pytest.approx(min(e["val_loss"] for e in fit.evals))


def test_resume_continues_at_the_same_step_with_the_same_batches(tmp_path):
    recipe = Recipe(epochs=3, batch_size=6, evals_per_epoch=2)

    def engine(state=None, stop_after=None):
        seen = []
        return Engine(_model(7), {"t": _data()}, {"t": _data(8, seed=1)}, recipe, CPU,
                      state_path=state, on_step=lambda s, parts: seen.append((s, parts["loss"])),
                      on_epoch_end=(lambda e, rec: e == stop_after) if stop_after else None), seen

    ref, ref_steps = engine()
    ref_fit = ref.fit()
    first, first_steps = engine(tmp_path / "state.pt", stop_after=1)
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    again, again_steps = engine(tmp_path / "state.pt")
    again.load_state(tmp_path / "state.pt")
    assert again.global_step == first.global_step == ref.steps_per_epoch
    fit = again.fit()
    assert first_steps + again_steps == ref_steps  # same steps, same losses (same batches)
    assert [e["val_loss"] for e in fit.evals] == [e["val_loss"] for e in ref_fit.evals]
    assert all(torch.equal(v, ref_fit.best_state[k]) for k, v in fit.best_state.items())
    other = Engine(_model(7), {"t": _data()}, None, recipe.replace(lr=5e-4), CPU)
    with pytest.raises(UserInputError, match=r"another training recipe \(lr differ"):
        other.load_state(tmp_path / "state.pt")


def test_class_balanced_loss_and_sampler():
    from eegmamba.training.engine.loop import class_weights

    w = class_weights(np.array([0, 0, 0, 1]), 2)
    assert torch.allclose(w, torch.tensor([4 / 6, 4 / 2]))
    y = np.array([0] * 30 + [1] * 6)
    d = TaskData(np.zeros((36, 2, 200), np.float32), y)
    eng = Engine(_model(), {"t": d}, None, Recipe(balance="sampler", batch_size=12, epochs=1), CPU)
    drawn = np.concatenate([i for _, i in eng._batches(0)])
    assert len(drawn) == 36 and 0.3 < y[drawn].mean() < 0.7  # ~half of each class, not 1/6


def test_augment_hook_is_called_on_training_batches_only():
    calls = []

    def augment(x, y, gen):
        calls.append((tuple(x.shape), isinstance(gen, torch.Generator)))
        return x.flip(-1), y

    eng = Engine(_model(), {"t": _data(24)}, {"t": _data(8, seed=1)},
                 Recipe(epochs=1, batch_size=6, min_steps_per_epoch=1), CPU, augment=augment)
    eng.fit()
    assert len(calls) == eng.steps_per_epoch and all(c == ((6, 2, 200), True) for c in calls)


def test_recipe_file_and_errors(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("preset: paper\nlr: 0.0005\nevals_per_epoch: 2\n")
    r = load_recipe(f)
    assert (r.lr, r.weight_decay, r.decay_all, r.evals_per_epoch) == (5e-4, 1e-6, True, 2)
    assert Recipe.from_dict(r.to_dict()) == r
    f.write_text("lr: 1e-3\nbogus: 1\n")
    with pytest.raises(UserInputError, match="bogus is not a recipe option"):
        load_recipe(f)
    with pytest.raises(UserInputError, match="select must be one of"):
        Recipe(select="f1")
    with pytest.raises(UserInputError, match="label_smoothing"):
        Recipe(label_smoothing=1.0)


def test_eegmamba_train_recipe_file_is_used_and_recorded(syn, tmp_path):
    import json

    from eegmamba.training import cli_train

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("lr: 0.0005\nweight_decay: 0.02\nepochs: 3\nevals_per_epoch: 2\n")
    out = tmp_path / "run"
    assert cli_train.main(["--profile", syn["profile"], "--data", syn["data"], "--out", str(out),
                           "--recipe", str(recipe), "--epochs", "1", "--folds", "2", "--variant",
                           "eegmamba_tiny", "--no-final", "--no-baseline", "--device", "cpu"]) == 0
    train = json.loads((out / "run.json").read_text())["config"]["train"]
    assert (train["lr"], train["weight_decay"], train["evals_per_epoch"]) == (5e-4, 0.02, 2)
    assert train["epochs"] == 1  # the command line wins over the file
    res = json.loads((out / "results.json").read_text())
    assert res["run"]["config"]["train"] == train
    fold = res["folds"][0]
    assert len(fold["evals"]) == 2 and fold["fit"]["steps_per_epoch"] >= 4  # batch clipped
    assert fold["best_step"] in [e["step"] for e in fold["evals"]]


def test_pre_engine_protocol_settings_read_as_the_old_recipes():
    from eegmamba.training.arms import ArmSettings

    old = ArmSettings.from_dict({"eegmamba_epochs": 5, "eegnet_epochs": 7})  # no "recipe" key
    r = old.recipe_for("eegmamba", seed=3)
    assert r == Recipe.paper(epochs=5, seed=3)
    e = old.recipe_for("eegnet", seed=3)
    assert (e.lr, e.weight_decay, e.ema, e.epochs, e.batch_size) == (1e-3, 0.0, 0.0, 7, 64)
    from eegmamba.training.protocols import ProtocolConfig

    legacy = ProtocolConfig("cross-subject", "motor_imagery", ("d",), "o",
                            settings=ArmSettings(recipe=None)).to_dict()
    assert "recipe" not in legacy["settings"]  # = the run.json of a pre-engine run: it resumes
    new = ArmSettings()
    assert ArmSettings.from_dict(json.loads(json.dumps(__import__("dataclasses").asdict(new)))) == new


def test_a_pre_engine_trainer_state_resumes(tmp_path):
    model = _model(2)
    old = {"model": model.state_dict(), "optimizer": torch.optim.AdamW(model.parameters()).state_dict(),
           "epoch": 1, "step": 0, "partial": [0.0, 0.0], "bad_epochs": 0, "best_loss": 0.7,
           "history": [{"epoch": 1, "train_loss": 0.7, "val_loss": 0.7}], "best_epoch": 1,
           "best_state": model.state_dict(), "rng": torch.get_rng_state()}
    torch.save(old, tmp_path / "state.pt")
    eng = Engine(_model(3), {"t": _data()}, {"t": _data(8, seed=1)}, Recipe.paper(epochs=2, batch_size=8),
                 CPU)
    eng.load_state(tmp_path / "state.pt")
    assert eng.global_step == eng.steps_per_epoch and "optimiser moments restarted" in eng.notes[-1]
    fit = eng.fit()
    assert [h["epoch"] for h in fit.history] == [1, 2] and eng.global_step == 2 * eng.steps_per_epoch


def test_a_profiles_augmentation_reaches_the_train_step(syn, monkeypatch):
    """The profile's declared augmentation (eegmamba.augment) is the engine's hook in fit_arm:
    called on every training batch, never on validation or test windows."""
    import eegmamba.augment as augment_pkg
    from eegmamba.data.dataset import build_windows
    from eegmamba.profiles import load_profile
    from eegmamba.training.arms import ArmSettings, Windows, fit_arm
    from eegmamba.training.engine.hooks import augmentation_for

    profile = load_profile(syn["profile"]).with_overrides(
        {"augmentation": {"noise": {"p": 1.0, "magnitude": 0.1}}})
    hook = augmentation_for(profile)
    assert hook is not None and "noise" in repr(hook)
    calls = []
    real = augment_pkg.build_augmentation

    def counting(p):
        aug = real(p)
        return None if aug is None else (lambda x, y, g: calls.append(len(x)) or aug(x, y, g))

    monkeypatch.setattr(augment_pkg, "build_augmentation", counting)
    ws = build_windows([f"{syn['data']}/subjA.edf"], profile)
    w = Windows(ws.X, ws.X, ws.y)
    settings = ArmSettings(eegnet_epochs=1, eegnet_batch=8, recipe=Recipe(evals_per_epoch=1))
    fitted = fit_arm("eegnet", profile, w, w, settings, seed=0)
    assert len(calls) == fitted.info["fit"]["steps_per_epoch"] and sum(calls) <= len(ws.y)
    fitted.proba(w)  # prediction does not augment
    assert len(calls) == fitted.info["fit"]["steps_per_epoch"]


def test_calibration_config_with_a_recipe_survives_the_worker_job_file():
    import dataclasses

    from eegmamba.training.calibrate import CalibConfig

    cfg = CalibConfig(layers="head", recipe=Recipe(lr=3e-4, ema=0.0))
    again = CalibConfig(**json.loads(json.dumps(dataclasses.asdict(cfg))))  # as the worker reads it
    assert again == cfg and again.engine_recipe().lr == 3e-4
    assert CalibConfig(lr=1e-4).engine_recipe().lr == 1e-4  # no recipe: the config's own fields
