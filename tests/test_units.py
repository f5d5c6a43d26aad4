"""Units: declared strings → µV factors, and the amplitude plausibility check (real recordings)."""

from __future__ import annotations

import numpy as np
import pytest

from eegmamba._checks import UserInputError
from eegmamba.data.readers import read_recording
from eegmamba.profiles import load_profile
from eegmamba.units import canonical_unit, check_amplitude, parse_units_option, scale_to_uv


@pytest.mark.parametrize("text,factor", [
    ("microvolts", 1.0), ("Microvolt", 1.0), ("µV", 1.0), ("μV", 1.0), ("uV", 1.0), ("UV", 1.0),
    ("millivolts", 1e3), ("mV", 1e3), ("MV", 1e3), ("volts", 1e6), ("V", 1e6), ("Volt", 1e6),
    ("nanovolts", 1e-3), ("nV", 1e-3), (" uV ", 1.0),
])
def test_voltage_spellings(text, factor):
    assert scale_to_uv(text) == factor


@pytest.mark.parametrize("text", [None, "", "n/a", "unknown", "a.u."])
def test_undeclared(text):
    assert canonical_unit(text) is None and scale_to_uv(text) is None


def test_other_units_are_not_voltages():
    assert canonical_unit("samples") == "samples" and scale_to_uv("samples") is None
    assert scale_to_uv("degC") is None


def test_units_option():
    assert parse_units_option("volts") == "V" and parse_units_option("µV") == "uV"
    with pytest.raises(ValueError, match="--units must be one of"):
        parse_units_option("counts")


def _eeg(seed=0, n=2000, c=8, std_uv=20.0, offset_uv=0.0):
    rng = np.random.default_rng(seed)
    return rng.normal(offset_uv, std_uv, (c, n))


def test_plausible_uv_and_implausible_volts_millivolts_nanovolts():
    x = _eeg()
    assert check_amplitude(x).ok
    v = check_amplitude(x * 1e-6, "stream 'S'")
    assert not v.ok and v.likely_unit == "V"
    assert v.message == (f"stream 'S' declares no unit (µV assumed) but its EEG amplitude is "
                         f"implausibly small for µV (median robust spread {v.spread_uv:.3g} µV) — "
                         "looks like V; rerun with --units V")
    assert check_amplitude(x * 1e-3).likely_unit == "mV"
    big = check_amplitude(x * 1e3, declared="uV")
    assert not big.ok and big.likely_unit == "nV" and "declares uV" in big.message
    assert "large" in big.message


def test_dc_offset_does_not_hide_volts():
    """A 20 mV electrode offset in volts has median |x| = 0.02, yet the spread says volts."""
    x = _eeg(offset_uv=20000.0) * 1e-6
    assert np.median(np.abs(x)) > 1e-2
    assert check_amplitude(x).likely_unit == "V"


def test_flat_or_empty_data_is_undecided_not_blocked():
    assert check_amplitude(np.zeros((4, 100))).ok
    assert check_amplitude(np.full((4, 100), np.nan)).ok
    flat_one = _eeg()
    flat_one[0] = 0.0  # one dead channel does not sway the median
    assert check_amplitude(flat_one).ok


def test_real_recordings_are_plausible(shared_data):
    for rel, profile in (("motor_imagery/S001R04.edf", "motor_imagery"),
                         ("seizure/chb01_03_ictal10s.edf", "seizure"),
                         ("sleep/dreams_excerpt1.edf", "sleep")):
        rec = read_recording(shared_data / rel, load_profile(profile))
        check = check_amplitude(rec.data)
        assert check.ok and 5 < check.spread_uv < 300, (rel, check)


def test_recording_in_volts_declared_as_uv_is_a_clear_error(tmp_path):
    """An EDF whose values are volts but whose header says uV: one line naming the file."""
    from eegmamba.testing.synthetic_edf import make_synthetic_edf

    import edfio

    p = load_profile("seizure")
    path = tmp_path / "volts.edf"
    make_synthetic_edf(path, p.n_channels, 256.0, 10.0, ["background"], ch_names=list(p.channels.names))
    edf = edfio.read_edf(path)
    signals = [edfio.EdfSignal(s.data * 1e-6, s.sampling_frequency, label=s.label,
                               physical_dimension="uV", physical_range=(-1e-3, 1e-3))
               for s in edf.signals]
    edfio.Edf(signals).write(path)
    with pytest.raises(UserInputError, match=r"volts\.edf declares V but its EEG amplitude is "
                                             r"implausibly small.*looks like V; fix the channel units"):
        read_recording(path, p)
