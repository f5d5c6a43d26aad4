"""Checkpoint round trip and the errors for corrupt or mismatched files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from eegmamba import TaskSpec, create_model
from eegmamba.checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint

MI = TaskSpec("mi", 3, 200, 2, ch_names=("C3", "Cz", "C4"), class_names=("left", "right"))


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    model = create_model("eegmamba_tiny", tasks=[MI]).eval()
    folder = save_checkpoint(tmp_path / "ckpt", model, {"profile": {"name": "mi"}, "sfreq": 200.0})
    return model, folder


def test_roundtrip_identical_outputs(saved):
    model, folder = saved
    loaded, meta = load_checkpoint(folder)
    x = torch.randn(4, 3, 200)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert meta["variant"] == "eegmamba_tiny" and meta["metadata"]["sfreq"] == 200.0
    assert loaded.expected_signal().ch_names == ("C3", "Cz", "C4")
    assert not loaded.training
    assert read_metadata(folder / "model.json")["package_version"]


def test_missing_folder_and_files(tmp_path, saved):
    _, folder = saved
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope")
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model.safetensors: missing"):
        load_checkpoint(folder)


def test_truncated_weights(saved):
    _, folder = saved
    w = folder / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"model.safetensors.*truncated"):
        load_checkpoint(folder)


def test_bad_json(saved):
    _, folder = saved
    (folder / "model.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"model.json: not valid JSON"):
        load_checkpoint(folder)


def _rewrite_weights(folder, state):
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "eegmamba-checkpoint",
                                                                  "variant": "eegmamba_tiny"})
    meta = json.loads((folder / "model.json").read_text())
    from eegmamba.checkpoint import _sha256

    meta["weights_sha256"] = _sha256(folder / "model.safetensors")
    (folder / "model.json").write_text(json.dumps(meta))


def test_missing_keys(saved):
    _, folder = saved
    state = load_file(str(folder / "model.safetensors"))
    del state["classifier.heads.mi.weight"]
    _rewrite_weights(folder, state)
    with pytest.raises(CheckpointError, match=r"missing \['classifier.heads.mi.weight'\]"):
        load_checkpoint(folder)


def test_wrong_shapes(saved):
    _, folder = saved
    state = load_file(str(folder / "model.safetensors"))
    state["classifier.heads.mi.weight"] = torch.zeros(5, 16)
    _rewrite_weights(folder, state)
    with pytest.raises(CheckpointError, match=r"'classifier.heads.mi.weight' has shape \(5, 16\)"):
        load_checkpoint(folder)


def test_metadata_from_another_variant(saved, tmp_path):
    _, folder = saved
    other = save_checkpoint(tmp_path / "other", create_model("eegmamba_single", tasks=[MI]))
    (folder / "model.json").write_text((other / "model.json").read_text())
    with pytest.raises(CheckpointError, match=r"sha256 differs"):
        load_checkpoint(folder)
    # even with a matching hash, the variant recorded inside the weights must agree
    meta = json.loads((folder / "model.json").read_text())
    from eegmamba.checkpoint import _sha256

    meta["weights_sha256"] = _sha256(folder / "model.safetensors")
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"weights are for variant 'eegmamba_tiny'"):
        load_checkpoint(folder)


def test_unsaveable_model(tmp_path):
    from eegmamba import EEGMamba, EEGMambaConfig

    with pytest.raises(ValueError, match="registry-built"):
        save_checkpoint(tmp_path / "x", EEGMamba(EEGMambaConfig(tasks=(MI,))))


def test_count_keyed_checkpoint_loads_and_computes_what_the_old_code_did(tmp_path):
    """Checkpoints of v0.1 (the first bundled demo among them) keyed the spatial branches by channel
    count and shared the tokenizer norms. Such a checkpoint, made here from a model of the v0.1/v0.2
    demo's config (dense tokenizer, d 128; tests/model/data) with seeded weights, is mapped on
    loading, and the ST-Adaptive output equals the old computation done by hand from the file's
    tensors."""
    from eegmamba.registry import build_model

    old = json.loads((Path(__file__).with_name("data") / "demo_v02_config.json").read_text())
    torch.manual_seed(0)
    demo = build_model(old["variant"], old["config"]).eval()
    folder = save_checkpoint(tmp_path / "v01", demo, {})
    _rewrite(folder, _old_format(demo.state_dict(), demo.config.tasks), old["variant"])
    model, meta = load_checkpoint(folder)
    assert any("channel count [22]" in u for u in meta["upgraded"])
    raw = load_file(str(folder / "model.safetensors"))
    torch.manual_seed(0)
    spec = model.expected_signal()
    x = torch.randn(3, 22, spec.n_times)

    def bn(y, p):
        return F.batch_norm(y, raw[p + "running_mean"], raw[p + "running_var"], raw[p + "weight"],
                            raw[p + "bias"], False, 0.0, 1e-5)

    s = "st_adaptive."
    y = F.gelu(bn(F.conv1d(x, raw[s + "spatial.branches.22.0.weight"], raw[s + "spatial.branches.22.0.bias"]),
                  s + "spatial.branches.22.1."))
    paths = []
    for name, k, st in (("small", 16, 8), ("wide", 100, 50)):
        c = F.conv1d(y, raw[f"{s}tokenizer.{name}.conv.weight"], raw[f"{s}tokenizer.{name}.conv.bias"],
                     stride=st, padding=k // 2)
        paths.append(F.gelu(bn(c, f"{s}tokenizer.{name}.norm.")).transpose(1, 2))
    cls = raw[s + "cls_token"].expand(3, -1, -1)
    expected = torch.cat([cls, *paths], dim=1)
    with torch.no_grad():
        got, cls_index = model.st_adaptive(x, spec.name)
        assert torch.equal(model(x), demo(x))
    assert cls_index == 0
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def _rewrite(folder, state, variant):
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "eegmamba-checkpoint",
                                                                  "variant": variant})
    meta = json.loads((folder / "model.json").read_text())
    from eegmamba.checkpoint import _sha256

    meta["weights_sha256"] = _sha256(folder / "model.safetensors")
    (folder / "model.json").write_text(json.dumps(meta))


def _old_format(state: dict, tasks) -> dict:
    """A state dict in the count-keyed, shared-norm layout, taken from the first task of each count."""
    old = {k: v for k, v in state.items() if ".spatial." not in k and ".norm." not in k
           or k.startswith(("blocks.", "moes.", "classifier."))}
    first = {}
    for t in tasks:
        first.setdefault(t.n_chans, t.name)
    for c, name in first.items():
        for f in ("weight", "bias"):
            old[f"st_adaptive.spatial.branches.{c}.0.{f}"] = state[f"st_adaptive.spatial.branches.{name}.{f}"]
        for f in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            old[f"st_adaptive.spatial.branches.{c}.1.{f}"] = state[f"st_adaptive.spatial.norm.{name}.{f}"]
    for path in ("small", "wide"):
        for f in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            old[f"st_adaptive.tokenizer.{path}.norm.{f}"] = state[f"st_adaptive.tokenizer.{path}.norm.{tasks[0].name}.{f}"]
    return old


def test_multi_task_count_keyed_checkpoint_maps_each_task_to_the_branch_it_used(tmp_path):
    mi = TaskSpec("mi", 22, 200, 2, ch_names=tuple(f"M{i}" for i in range(22)))
    seiz = TaskSpec("seizure", 22, 200, 2, ch_names=tuple(f"B{i}" for i in range(22)))
    sleep = TaskSpec("sleep", 1, 200, 5, ch_names=("EEG",))
    torch.manual_seed(0)
    model = create_model("eegmamba_tiny", tasks=[mi, seiz, sleep])
    with torch.no_grad():  # give the norms distinct statistics
        for n, b in model.named_buffers():
            if n.endswith("running_var"):
                b.uniform_(0.5, 2.0)
    model.eval()
    folder = save_checkpoint(tmp_path / "old", model)
    old = _old_format(model.state_dict(), (mi, seiz, sleep))
    _rewrite(folder, old, "eegmamba_tiny")
    loaded, meta = load_checkpoint(folder)
    assert "spatial branches keyed by channel count [1, 22] -> by montage ['mi', 'seizure', 'sleep']" in meta["upgraded"]
    x22, x1 = torch.randn(2, 22, 200), torch.randn(2, 1, 200)
    with torch.no_grad():
        # the old model ran both 22-channel tasks through one conv + norm: so does the mapped one
        torch.testing.assert_close(loaded.st_adaptive(x22, "seizure")[0], loaded.st_adaptive(x22, "mi")[0])
        torch.testing.assert_close(loaded.st_adaptive(x22, "mi")[0], model.st_adaptive(x22, "mi")[0])
        torch.testing.assert_close(loaded.st_adaptive(x1, "sleep")[0][:, 1:],
                                   _sleep_tokens_with_mi_norms(model, x1))
    # plain load_state_dict maps the old names as well
    fresh = create_model("eegmamba_tiny", tasks=[mi, seiz, sleep])
    fresh.load_state_dict(old)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in fresh.state_dict().items())


def _sleep_tokens_with_mi_norms(model, x):
    st = model.st_adaptive
    y = st.spatial(x, "sleep")  # the 1-channel branch and its own spatial norm (old branch "1")
    return torch.cat([st.tokenizer.small(y, "mi"), st.tokenizer.wide(y, "mi")], dim=1)


def test_unmappable_old_tensors_are_refused_in_one_line(saved):
    _, folder = saved
    state = load_file(str(folder / "model.safetensors"))
    for f in ("weight", "bias"):
        state[f"st_adaptive.spatial.branches.5.0.{f}"] = state.pop(f"st_adaptive.spatial.branches.mi.{f}")
    _rewrite_weights(folder, state)
    with pytest.raises(CheckpointError, match=r"tensors do not match variant 'eegmamba_tiny': missing "
                                              r"\['st_adaptive.spatial.branches.mi.bias'") as exc:
        load_checkpoint(folder)
    assert "\n" not in str(exc.value)
