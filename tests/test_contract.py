"""``eegmamba.checkpoint.check_checkpoint``: the one check between a checkpoint and the profile it runs
under (eval, live, calibration and ``--list`` call it). The bundled demo checkpoint and tiny models
saved here stand in for trained ones (the check reads metadata and the model's declared signal)."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch

import eegmamba
from eegmamba import TaskSpec, create_model
from eegmamba.checkpoint import (LIVE_ONLY, OVERRIDE_FLAG, CheckpointError, Difference, _fields,
                                 check_checkpoint, checkpoint_profile, load_checkpoint,
                                 profile_differences, read_metadata, save_checkpoint)
from eegmamba.profiles import (AlignmentSpec, AugmentationSpec, ChannelSpec, FilterSpec, LabelRule,
                               QualitySpec, SmoothingSpec, WindowSpec, load_profile)

DEMO = Path(eegmamba.__file__).resolve().parent / "assets" / "demo" / "mi_checkpoint"
MI = load_profile("motor_imagery")


@pytest.fixture(scope="module")
def demo():
    return load_checkpoint(DEMO)


def test_the_demo_checkpoint_runs_the_profile_stored_in_it_which_is_motor_imagery_yaml(demo):
    """``eegmamba-live --demo`` takes its profile from the bundled checkpoint; it equals the YAML in
    every field, so ``--demo --profile motor_imagery`` runs without a note either."""
    model, meta = demo
    alone = check_checkpoint(meta, model=model, where="demo")
    assert alone.profile == MI and alone.given is None and alone.notes() == []
    beside = check_checkpoint(meta, MI, model=model, where="demo")
    assert beside.differences == () and beside.notes() == [] and beside.profile is MI
    assert checkpoint_profile(read_metadata(DEMO), None, "demo") == MI  # --list reads only the JSON


CONTRACT = [
    (dict(filter=FilterSpec(4.0, 30.0)), "filter.l_freq 0.1 in the checkpoint, 4 in the profile"),
    (dict(filter=FilterSpec(notch_hz=50.0)), "filter.notch_hz none in the checkpoint, 50 in"),
    (dict(normalization="recording"), "normalization zscore in the checkpoint, recording in"),
    (dict(quality=QualitySpec(saturation_uv=500.0)), "quality.saturation_uv 800 in the checkpoint"),
    (dict(channels=ChannelSpec(tuple(reversed(MI.channels.names)))),
     "channels.names [Fz, FC3, FC1"),
    (dict(classes=("right_fist", "left_fist")),
     "classes [left_fist, right_fist] in the checkpoint, [right_fist, left_fist] in the profile"),
    (dict(window=WindowSpec(2.0, 0.5, 0.25)), "window.length_s 3 in the checkpoint, 2 in"),
    (dict(alignment=AlignmentSpec("euclidean")), "alignment.method none in the checkpoint, euclidean"),
]


@pytest.mark.parametrize("change,message", CONTRACT)
def test_a_profile_differing_in_the_numbers_is_refused_in_one_line_naming_both_values(
        demo, change, message):
    model, meta = demo
    given = dataclasses.replace(MI, **change)
    with pytest.raises(CheckpointError) as exc:
        check_checkpoint(meta, given, model=model, where="checkpoint CK")
    text = str(exc.value)
    assert "\n" not in text and text.startswith("checkpoint CK does not fit profile 'motor_imagery'")
    assert message in text and OVERRIDE_FLAG in text


@pytest.mark.parametrize("change,message", CONTRACT[:5])
def test_the_override_runs_the_given_profile_and_says_what_it_overrides(demo, change, message):
    model, meta = demo
    given = dataclasses.replace(MI, **change)
    c = check_checkpoint(meta, given, model=model, where="checkpoint CK", override=True)
    assert c.profile is given and c.overridden and c.stored == MI
    (level, line), = c.notes()
    assert level == "warning" and "runs OVER the checkpoint's" in line and message in line


def test_the_override_still_needs_windows_and_classes_the_model_takes(demo):
    """Swapped class names run with the override; another window length or class count cannot."""
    model, meta = demo
    swapped = dataclasses.replace(MI, classes=("right_fist", "left_fist"))
    assert check_checkpoint(meta, swapped, model=model, override=True).profile is swapped
    for change, message in ((dict(classes=("left_fist", "right_fist", "rest")),
                             "model has 2 classes, profile 3"),
                            (dict(window=WindowSpec(2.0, 0.5, 0.25)),
                             "model windows 600 samples, profile 400")):
        with pytest.raises(CheckpointError, match=message):
            check_checkpoint(meta, dataclasses.replace(MI, **change), model=model, override=True)


LIVE = [
    (dict(window=WindowSpec(3.0, 0.25, 0.25)), "window.hop_s 0.5 in the checkpoint, 0.25 in"),
    (dict(smoothing=SmoothingSpec("mean", 3)), "smoothing.method none in the checkpoint, mean in"),
    (dict(labels=(LabelRule(("T1",), "left_fist"),)), "labels "),
    (dict(channels=ChannelSpec(MI.channels.names, {"Fz": ("EEG Fz",)})), "channels.aliases {} in"),
    (dict(augmentation=AugmentationSpec()), "augmentation.mirror_p 0.5 in the checkpoint, 0 in"),
    (dict(name="my_mi", description="mine"), None),
]


@pytest.mark.parametrize("change,message", LIVE)
def test_live_only_settings_may_differ_and_are_listed_as_such(demo, change, message):
    model, meta = demo
    given = dataclasses.replace(MI, **change)
    c = check_checkpoint(meta, given, model=model)
    assert c.profile is given and not c.overridden and c.differences
    assert all(d.live_only for d in c.differences)
    if message is None:
        assert c.notes() == []  # a name or a description: nothing to report
    else:
        (level, line), = c.notes()
        assert level == "info" and "live-only settings" in line and message in line


def test_every_profile_field_is_compared_and_a_field_added_later_is_a_contract_field():
    """The comparison walks the dataclass fields: a new field (as ``alignment`` was) is compared,
    and it is part of the contract unless LIVE_ONLY names it."""

    @dataclasses.dataclass(frozen=True)
    class RereferenceSpec:
        method: str = "none"
        channels: tuple[str, ...] = ()

    @dataclasses.dataclass(frozen=True)
    class FutureProfile(type(MI)):
        rereference: RereferenceSpec = RereferenceSpec()

    stored = FutureProfile(**{f.name: getattr(MI, f.name) for f in dataclasses.fields(MI)})
    given = dataclasses.replace(stored, rereference=RereferenceSpec("average"))
    assert profile_differences(stored, given) == [Difference("rereference.method", "none", "average")]
    assert not profile_differences(stored, given)[0].live_only
    assert profile_differences(MI, dataclasses.replace(MI, source="elsewhere.yaml")) == []
    paths = list(_fields(MI))
    for key in LIVE_ONLY:  # each names a field (a typo would refuse what it means to allow)
        assert any(p == key or p.startswith(key + ".") for p in paths), key


def _tiny(tmp_path, profile, metadata):
    torch.manual_seed(0)
    spec = TaskSpec(profile.task, profile.n_channels, profile.window_samples, len(profile.classes),
                    profile.sfreq, profile.channels.names, profile.classes)
    folder = save_checkpoint(tmp_path / "ck", create_model("eegmamba_tiny", tasks=[spec]).eval(),
                             metadata)
    return load_checkpoint(folder)


def test_a_checkpoint_without_a_stored_profile_needs_one_and_says_it_was_not_checked(tmp_path):
    seizure = load_profile("seizure")
    model, meta = _tiny(tmp_path, seizure, {})
    with pytest.raises(CheckpointError, match="stores no profile"):
        check_checkpoint(meta, model=model, where="ck")
    c = check_checkpoint(meta, seizure, model=model, where="ck")
    assert c.profile is seizure and c.stored is None
    assert c.notes()[0][0] == "warning" and "stores no profile" in c.notes()[0][1]
    with pytest.raises(CheckpointError, match=r"ck does not fit profile 'motor_imagery': model "
                                              r"channels \[FP1-F7, .*model windows 800 samples, "
                                              r"profile 600; model classes \[background, seizure\]"):
        check_checkpoint(meta, MI, model=model, where="ck")


def test_a_profile_stored_without_tasks_is_read_and_a_model_that_contradicts_it_is_refused(
        tmp_path, demo):
    seizure = load_profile("seizure")
    model, meta = _tiny(tmp_path, seizure, {"profile": seizure.to_dict()})
    assert check_checkpoint(meta, model=model).profile == seizure
    _, demo_meta = demo
    broken = copy.deepcopy(demo_meta)
    broken["metadata"]["tasks"]["motor_imagery"]["profile"]["sfreq"] = 240.0
    with pytest.raises(CheckpointError, match=r"checkpoint is inconsistent .* model rate 200 Hz, "
                                              r"profile 240 Hz"):
        check_checkpoint(broken, model=demo[0], where="ck")
