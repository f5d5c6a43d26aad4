"""Checkpoint round trip and the errors for corrupt or mismatched files."""

from __future__ import annotations

import json

import pytest
import torch
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
