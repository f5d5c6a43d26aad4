"""The committed issue-17 grid validates (every profile section, model and recipe), holds at most 6
configurations each with a reason, its peers include EEGNet with and without alignment, and a bad
entry fails in one line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from eegmamba._checks import UserInputError
from experiments.grid import MAX_CONFIGS, load_grid, main

GRID = Path(__file__).resolve().parents[2] / "experiments" / "issue17_grid.yaml"


def test_committed_grid_is_valid():
    grid = load_grid(GRID)
    configs = [c for c in grid if not c.peer]
    assert 1 <= len(configs) <= MAX_CONFIGS
    assert all(c.why for c in configs)
    variants = {c.model for c in configs}
    assert {"eegmamba_fb", "eegmamba_single"} <= variants
    assert {c.profile.alignment.method for c in configs} == {"euclidean", "none"}
    assert {c.profile.augmentation.enabled for c in configs} == {True, False}
    eegnet = {c.profile.alignment.method for c in grid if c.peer and c.model == "eegnet"}
    assert eegnet == {"euclidean", "none"}
    assert main([str(GRID)]) == 0


@pytest.mark.parametrize("mutate, words", [
    (lambda d: d["configurations"][0]["model"].update(variant="eegmamba_huge"), "unknown 'eegmamba_huge'"),
    (lambda d: d["configurations"][1]["model"].update(tokenizer_drop_path=2.0), "tokenizer_drop_path"),
    (lambda d: d["configurations"][0].update(why=""), "why: say why"),
    (lambda d: d["configurations"].append(dict(d["configurations"][0], id="c7")), "7 configurations"),
    (lambda d: d["configurations"][2]["profile"].update(alignment={"method": "riemann"}),
     "alignment.method must be one of"),
])
def test_bad_grid_entries_fail_naming_them(tmp_path, mutate, words):
    d = yaml.safe_load(GRID.read_text())
    mutate(d)
    bad = tmp_path / "grid.yaml"
    bad.write_text(yaml.safe_dump(d))
    with pytest.raises(UserInputError, match=words.replace("(", r"\(")):
        load_grid(bad)
