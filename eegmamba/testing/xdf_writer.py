"""A minimal XDF 1.0 writer (https://github.com/sccn/xdf/wiki/Specifications), for tests and for
turning a recording into the file LabRecorder would have written.

It writes the chunks LabRecorder writes: FileHeader, StreamHeader per stream, Samples, ClockOffset,
StreamFooter. Numeric streams are written as ``float32``, ``double64`` or ``int8/16/32/64``, string
streams (markers) as ``string``; every sample carries its timestamp.

    python -m eegmamba.testing.xdf_writer S001R04.edf out.xdf [--offset-s 0.5 --jitter-s 0.0005]

writes the recording's channels (µV) as an EEG stream and its annotations as a ``Markers`` stream
(``description``, ``duration_s``). ``--offset-s`` simulates a recording from another host: the
EEG timestamps are on a clock ``offset`` seconds behind the recorder's, with ClockOffset chunks
saying so (a reader that synchronises clocks puts them back); ``--jitter-s`` adds Gaussian jitter
to the EEG timestamps (a reader that dejitters removes it).
"""

from __future__ import annotations

import argparse
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

_FMT = {"float32": "<f4", "double64": "<f8", "int8": "<i1", "int16": "<i2", "int32": "<i4",
        "int64": "<i8"}


@dataclass
class XdfStream:
    """One stream to write: ``data`` (n, C) numeric or a list of per-sample lists of str."""

    name: str
    stype: str
    srate: float
    channel_format: str
    data: object
    timestamps: np.ndarray
    labels: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)  # per channel; default: the stream's type
    source_id: str = ""
    clock_offsets: list[tuple[float, float]] = field(default_factory=list)  # (time, value) s


def _varlen(n: int) -> bytes:
    if n < 256:
        return struct.pack("<BB", 1, n)
    if n < 2 ** 32:
        return struct.pack("<BI", 4, n)
    return struct.pack("<BQ", 8, n)


def _chunk(tag: int, content: bytes) -> bytes:
    return _varlen(len(content) + 2) + struct.pack("<H", tag) + content


def _header_xml(s: XdfStream, n_ch: int) -> bytes:
    chans = "".join(
        "<channel>" + f"<label>{escape(lab)}</label>"
        + (f"<unit>{escape(s.units[i])}</unit>" if i < len(s.units) else "")
        + f"<type>{escape(s.types[i] if i < len(s.types) else s.stype)}</type></channel>"
        for i, lab in enumerate(s.labels))
    return (f'<?xml version="1.0"?><info><name>{escape(s.name)}</name><type>{escape(s.stype)}</type>'
            f"<channel_count>{n_ch}</channel_count><nominal_srate>{s.srate:g}</nominal_srate>"
            f"<channel_format>{s.channel_format}</channel_format>"
            f"<source_id>{escape(s.source_id)}</source_id><version>1.1</version>"
            f"<created_at>0</created_at><uid>{escape(s.name)}-uid</uid>"
            f"<session_id>default</session_id><hostname>writer</hostname>"
            f"<desc><channels>{chans}</channels></desc></info>").encode()


def _samples(sid: int, s: XdfStream, a: int, b: int) -> bytes:
    out = [struct.pack("<I", sid), _varlen(b - a)]
    if s.channel_format != "string":  # [8][timestamp][values] per sample, as one record array
        values = np.asarray(s.data[a:b])
        rec = np.zeros(b - a, dtype=[("n", "u1"), ("t", "<f8"),
                                     ("v", _FMT[s.channel_format], (values.shape[1],))])
        rec["n"], rec["t"], rec["v"] = 8, s.timestamps[a:b], values
        return _chunk(3, b"".join(out) + rec.tobytes())
    for k in range(a, b):
        out.append(struct.pack("<Bd", 8, float(s.timestamps[k])))
        for value in s.data[k]:
            raw = str(value).encode()
            out.append(_varlen(len(raw)) + raw)
    return _chunk(3, b"".join(out))


def write_xdf(path: str | Path, streams: list[XdfStream], chunk: int = 256) -> Path:
    """Write ``streams`` to ``path`` (samples interleaved in chunks of ``chunk``, as a recorder)."""
    path = Path(path)
    parts = [b"XDF:", _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')]
    for sid, s in enumerate(streams, 1):
        n_ch = len(s.data[0]) if len(s.data) else len(s.labels)
        parts.append(_chunk(2, struct.pack("<I", sid) + _header_xml(s, n_ch)))
    n_max = max(len(s.timestamps) for s in streams)
    for a in range(0, n_max, chunk):
        for sid, s in enumerate(streams, 1):
            b = min(a + chunk, len(s.timestamps))
            if a < b:
                parts.append(_samples(sid, s, a, b))
    for sid, s in enumerate(streams, 1):
        for t, v in s.clock_offsets:
            parts.append(_chunk(4, struct.pack("<Idd", sid, t, v)))
    for sid, s in enumerate(streams, 1):
        ts = s.timestamps
        offsets = "".join(f"<offset><time>{t!r}</time><value>{v!r}</value></offset>"
                          for t, v in s.clock_offsets)
        footer = (f'<?xml version="1.0"?><info><first_timestamp>{ts[0] if len(ts) else 0!r}'
                  f"</first_timestamp><last_timestamp>{ts[-1] if len(ts) else 0!r}</last_timestamp>"
                  f"<sample_count>{len(ts)}</sample_count><clock_offsets>{offsets}</clock_offsets>"
                  "</info>")
        parts.append(_chunk(6, struct.pack("<I", sid) + footer.encode()))
    path.write_bytes(b"".join(parts))
    return path


def recording_to_xdf(src: str | Path, dst: str | Path, *, t0: float = 1000.0, offset_s: float = 0.0,
                     jitter_s: float = 0.0, seed: int = 0, fmt: str = "float32") -> Path:
    """A recording (any MNE-readable file) as an XDF: its channels in µV as ``EEG`` (labels,
    ``microvolts``), its annotations as ``Markers`` (``description``, ``duration_s``). The EEG is
    stamped on a clock ``offset_s`` behind the recorder's (ClockOffset chunks: +``offset_s``), with
    Gaussian jitter ``jitter_s``; markers on the recorder's clock at their onset samples."""
    import mne

    raw = mne.io.read_raw(src, preload=True, verbose="error")
    sfreq = raw.info["sfreq"]
    data = (raw.get_data() * 1e6).T
    true_t = t0 + np.arange(raw.n_times) / sfreq
    rng = np.random.default_rng(seed)
    eeg_t = true_t - offset_s + (rng.normal(0, jitter_s, raw.n_times) if jitter_s else 0.0)
    offsets = [(float(t - offset_s), float(offset_s)) for t in np.arange(true_t[0], true_t[-1] + 5, 5.0)]
    onsets = np.round((raw.annotations.onset - raw.first_time * (raw.annotations.orig_time is not None))
                      * sfreq).astype(int)
    markers = XdfStream(
        f"{Path(src).stem}-markers", "Markers", 0.0, "string",
        [[str(d), repr(float(u))] for d, u in zip(raw.annotations.description,
                                                   raw.annotations.duration)],
        t0 + onsets / sfreq, ["description", "duration_s"], source_id=f"{Path(src).stem}-markers")
    eeg = XdfStream(Path(src).stem, "EEG", sfreq, fmt, data, eeg_t, list(raw.ch_names),
                    ["microvolts"] * len(raw.ch_names), source_id=Path(src).stem,
                    clock_offsets=offsets if offset_s else [])
    return write_xdf(dst, [eeg, markers])


def main() -> int:
    ap = argparse.ArgumentParser(description="Write a recording as an XDF file (EEG + Markers).")
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--offset-s", type=float, default=0.0)
    ap.add_argument("--jitter-s", type=float, default=0.0)
    args = ap.parse_args()
    print(recording_to_xdf(args.src, args.dst, offset_s=args.offset_s, jitter_s=args.jitter_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
