"""Whole-model tests: every registered EEGMamba variant, input validation, multi-task routing."""

from __future__ import annotations

import pytest
import torch

from eegmamba import EEGMamba, EEGMambaConfig, TaskSpec, create_model, list_models

MI = TaskSpec("mi", n_chans=22, n_times=800, n_classes=4)
SLEEP = TaskSpec("sleep", n_chans=1, n_times=6000, n_classes=5)
EEGMAMBA_VARIANTS = [n for n in list_models() if n.startswith("eegmamba_")]


def test_registry_lists_paper_variants():
    assert {"eegmamba_single", "eegmamba_multi", "eegmamba_tiny"} <= set(list_models())


@pytest.mark.parametrize("name", EEGMAMBA_VARIANTS)
def test_every_variant_forward_backward(name):
    torch.manual_seed(0)
    tasks = [MI] if name == "eegmamba_single" else [MI, TaskSpec("s", 1, 400, 5)]
    model = create_model(name, tasks=tasks, backend="ref")
    model.train()
    total = 0.0
    for spec in tasks:
        x = torch.randn(2, spec.n_chans, spec.n_times)
        logits = model(x, task=spec.name)
        assert logits.shape == (2, spec.n_classes) and torch.isfinite(logits).all()
        total = total + logits.pow(2).mean() + model.last_aux_loss
    total.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert no_grad == []


def test_paper_sizes():
    single = create_model("eegmamba_single", tasks=[MI])
    multi = create_model("eegmamba_multi", tasks=[MI, SLEEP])
    assert single.config.d_model == 128 and len(single.blocks) == 2 and len(single.moes) == 0
    assert len(single.st_adaptive.spatial.branches) == 1 and len(single.classifier.heads) == 1
    assert multi.config.d_model == 128 and len(multi.blocks) == 8 and len(multi.moes) == 8
    assert all(m.n_experts == 8 and m.top_k == 2 and m.universal is not None for m in multi.moes)
    assert list(multi.st_adaptive.spatial.branches) == ["mi", "sleep"]
    with pytest.raises(ValueError, match="exactly one task"):
        create_model("eegmamba_single", tasks=[MI, SLEEP])


def test_single_variant_has_no_aux_loss():
    model = create_model("eegmamba_single", tasks=[MI]).eval()
    model(torch.randn(1, 22, 800))
    assert float(model.last_aux_loss) == 0.0


def test_input_validation_names_expected_and_actual():
    model = create_model("eegmamba_tiny", tasks=[MI, SLEEP]).eval()
    with pytest.raises(ValueError, match=r"expects 22 channels, got 21"):
        model(torch.randn(1, 21, 800), task="mi")
    with pytest.raises(ValueError, match=r"expects windows of 800 samples .*got 700"):
        model(torch.randn(1, 22, 700), task="mi")
    with pytest.raises(ValueError, match=r"\(batch, channels, samples\)"):
        model(torch.randn(22, 800), task="mi")
    with pytest.raises(ValueError, match=r"unknown task 'seizure'.*\['mi', 'sleep'\]"):
        model(torch.randn(1, 22, 800), task="seizure")
    with pytest.raises(ValueError, match="pass task="):
        model(torch.randn(1, 22, 800))
    # any window length works when asked for (temporal adaptation through the class token)
    assert model(torch.randn(1, 22, 1234), task="mi", strict_length=False).shape == (1, 4)


def test_expected_signal_declared():
    spec = TaskSpec("mi", 3, 800, 2, ch_names=("C3", "Cz", "C4"), class_names=("left", "right"))
    model = create_model("eegmamba_single", tasks=[spec])
    got = model.expected_signal()
    assert got.ch_names == ("C3", "Cz", "C4") and got.sfreq == 200.0 and got.n_times == 800


def test_task_tokens_change_multi_task_outputs():
    torch.manual_seed(0)
    a, b = TaskSpec("a", 4, 200, 3), TaskSpec("b", 4, 200, 3)
    model = create_model("eegmamba_tiny", tasks=[a, b]).eval()
    for moe in model.moes:
        torch.nn.init.normal_(moe.linear_gate.weight)
    x = torch.randn(2, 4, 200)
    model(x, task="a")
    ra = model.moes[0].routing.logits.clone()
    model(x, task="b")
    assert not torch.allclose(ra, model.moes[0].routing.logits)


def test_config_validation_and_roundtrip():
    cfg = EEGMambaConfig(tasks=(MI,))
    assert EEGMambaConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError,
                       match=r"EEGMambaConfig: unknown fields \['n_layer'\]; known: .*n_layers"):
        EEGMambaConfig.from_dict({**cfg.to_dict(), "n_layer": 2})
    with pytest.raises(ValueError, match="top_k"):
        EEGMambaConfig(tasks=(MI,), n_experts=2, top_k=3)
    with pytest.raises(ValueError, match="backend"):
        EEGMambaConfig(tasks=(MI,), backend="cuda")
    with pytest.raises(ValueError, match="duplicate task"):
        EEGMambaConfig(tasks=(MI, MI))
    with pytest.raises(ValueError, match="n_classes"):
        TaskSpec("x", 2, 100, 1)
    assert isinstance(EEGMamba(cfg), torch.nn.Module)


def test_forcing_fused_backend_on_cpu_is_a_clear_error():
    model = create_model("eegmamba_tiny", tasks=[MI], backend="mamba_ssm").eval()
    with pytest.raises(RuntimeError, match="mamba"):
        model(torch.randn(1, 22, 800))


def _signals(task: str, n: int, gen: torch.Generator) -> torch.Tensor:
    """Per-window z-scored windows with different spectra: white noise ("a"), a random walk ("b")."""
    x = torch.randn(n, 2, 400, generator=gen)
    if task == "b":
        x = x.cumsum(-1)
    return (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True)


def test_per_task_norms_evaluate_each_task_with_its_training_statistics():
    """Every training batch holds one task; each task's norm must then hold that task's statistics,
    so eval-mode normalisation equals what training did (a norm shared by both tasks cannot)."""
    names = ("C3", "C4")
    a, b = TaskSpec("a", 2, 400, 2, ch_names=names), TaskSpec("b", 2, 400, 2, ch_names=names)
    torch.manual_seed(0)
    model = create_model("eegmamba_tiny", tasks=[a, b], backend="ref").train()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.momentum = None  # cumulative averages: no trace of the initial running statistics
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for step in range(80):  # alternate single-task batches, as the dynamic sampler does
            task = "ab"[step % 2]
            model(_signals(task, 16, gen), task=task)
    model.eval()
    tok = model.st_adaptive.tokenizer
    var = {}
    for task in "ab":
        x = _signals(task, 256, gen)
        seen = {}
        hooks = [getattr(tok, p).norm[task].register_forward_hook(
            lambda m, i, o, p=p: seen.__setitem__(p, i[0])) for p in ("small", "wide")]
        with torch.no_grad():
            model(x, task=task)
        for h in hooks:
            h.remove()
        for p, inp in seen.items():
            bn = getattr(tok, p).norm[task]
            dims = (0,) if inp.dim() == 2 else (0, 2)  # (B·N, D) on the token-major conv path
            batch_var = inp.var(dim=dims, unbiased=False)
            batch_mean = inp.mean(dim=dims)
            ratio = batch_var / bn.running_var
            assert 0.8 < float(ratio.median()) < 1.25, (task, p, ratio)
            err = (batch_mean - bn.running_mean).abs() / batch_var.sqrt()
            assert float(err.median()) < 0.2, (task, p, err)
            var[task, p] = (bn.running_mean, bn.running_var)
    # the two tasks' statistics really differ: a norm shared by both would hold their mixture,
    # off by more than 2x in variance on some channels
    worst = 0.0
    for p in ("small", "wide"):
        (ma, va), (mb, vb) = var["a", p], var["b", p]
        mix = (va + vb) / 2 + ((ma - mb) / 2) ** 2
        worst = max(worst, float((va / mix).log().abs().max()), float((vb / mix).log().abs().max()))
    assert worst > torch.tensor(2.0).log()
