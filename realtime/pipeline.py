"""Per (stream, profile) processing: channel picking, the shared preprocessing step, the windowing
rule, newest-window-only scheduling and latency bookkeeping. Synchronous, no I/O, no threads.

The :class:`~eegmamba.preprocessing.Preprocessor` and :class:`~eegmamba.windowing.Windower` are the
exact objects the offline pipeline uses, so live windows equal offline windows of the same samples.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

from eegmamba._checks import UserInputError
from eegmamba.channels import match_channels
from eegmamba.preprocessing import Preprocessor
from eegmamba.profiles import Profile
from eegmamba.windowing import Window, Windower


@dataclass(frozen=True)
class PendingWindow:
    """A window ready for inference, with the times (seconds) of its way here.

    ``source_time``: stream timestamp of the last sample of the chunk that delivered the window's last
    input sample (for a replayed stream, and any outlet that stamps a chunk when it pushes it, the
    push time of that chunk, on the local clock for a local stream). ``arrival``: local clock
    (``pylsl.local_clock``) when that chunk was pulled — the reference of the published
    ``latency_ms``. ``completed``: arrival of the newest chunk of the block that produced the window
    (the resampler has no look-ahead, so it equals ``arrival`` unless chunks queued up behind it).
    ``preprocessed``: local clock when preprocessing and windowing of that block were done.
    """

    pipeline: "ProfilePipeline"
    window: Window
    arrival: float
    completed: float
    source_time: float = float("nan")
    preprocessed: float = float("nan")


def check_stream_against(profile: Profile, n_model_chans: int, n_model_times: int, model_sfreq: float,
                         model_classes: tuple[str, ...], what: str) -> None:
    """The checkpoint must agree with the profile it is run under; ``what`` names the checkpoint."""
    problems = []
    if n_model_chans != profile.n_channels:
        problems.append(f"{n_model_chans} channels vs the profile's {profile.n_channels}")
    if n_model_times != profile.window_samples:
        problems.append(f"windows of {n_model_times} samples vs the profile's {profile.window_samples}")
    if abs(model_sfreq - profile.sfreq) > 1e-6:
        problems.append(f"{model_sfreq:g} Hz vs the profile's {profile.sfreq:g} Hz")
    if tuple(model_classes) != tuple(profile.classes):
        problems.append(f"classes {list(model_classes)} vs the profile's {list(profile.classes)}")
    if problems:
        raise UserInputError(f"{what} does not fit profile {profile.name!r}: " + "; ".join(problems))


class ProfilePipeline:
    """One profile on one stream.

    Parameters
    ----------
    profile : Profile
    stream_key : str, the acquisition key of the stream
    stream_channels : list of str, the stream's channel labels (LSL description)
    stream_sfreq : float, Hz, the stream's nominal rate
    channel_map : dict, optional, profile channel name → stream channel name, applied before the
        profile's aliases (the ``--channel-map`` option)
    """

    def __init__(self, profile: Profile, stream_key: str, stream_channels: list[str],
                 stream_sfreq: float, model_key: str, channel_map: dict[str, str] | None = None) -> None:
        if stream_sfreq <= 0:
            raise UserInputError(
                f"stream {stream_key!r} declares an irregular rate; profile {profile.name!r} needs a "
                "regularly sampled EEG stream"
            )
        self.profile = profile
        self.stream_key = stream_key
        self.model_key = model_key
        aliases = {k: tuple(v) for k, v in profile.channels.aliases.items()}
        for name, target in (channel_map or {}).items():
            if name not in profile.channels.names:
                raise UserInputError(
                    f"--channel-map names {name!r}, which is not a channel of profile {profile.name!r}"
                )
            aliases[name] = (target,)
        try:
            self.picks = np.asarray(match_channels(stream_channels, profile.channels.names, aliases))
        except UserInputError as exc:
            raise UserInputError(
                f"stream {stream_key!r} does not fit profile {profile.name!r}: {exc}; "
                "or map names with --channel-map PROFILE_NAME=STREAM_NAME"
            ) from None
        self.pre = Preprocessor(profile, stream_sfreq, len(self.picks))
        self.windower = Windower.from_profile(profile, in_sfreq=stream_sfreq)
        self.drops: Counter = Counter()
        self.n_windows = 0
        # per chunk: (first timestamp, last timestamp, arrival)
        self._arrivals: deque[tuple[float, float, float]] = deque()
        # picked raw chunks held back until the next window's last input sample is among them
        self._held: list[tuple[np.ndarray, np.ndarray]] = []
        self._n_held = 0
        self._max_held = max(1, int(stream_sfreq))  # process at least every second of input

    def reset(self) -> None:
        """Start over after a stream loss: a window never spans an outage."""
        self.pre.reset()
        self._merge_windower_drops()
        self.windower.reset()
        self._arrivals.clear()
        self._held, self._n_held = [], 0

    def _merge_windower_drops(self) -> None:
        self.drops.update(self.windower.drops)
        self.windower.drops.clear()

    def all_drops(self) -> Counter:
        return self.drops + self.windower.drops

    def push_many(self, chunks: list[tuple[np.ndarray, np.ndarray, float]],
                  clock=None) -> list[PendingWindow]:
        """Feed several chunks ``(samples (C_stream, n), timestamps (n,), arrival)`` at once.

        Chunks are held back until the input sample that completes the next window is among them
        (or a second of input is held), then go through the preprocessing step as one block. The
        step is chunk-invariant and has no look-ahead, so the windows and the moment each comes out
        are the same as pushing every chunk at once, while the cost per stream follows the windows
        (every hop), not the chunks (10-sample chunks at 160 Hz: 8 calls per 0.5-s hop → 1): with
        many streams that cost, not only the model, decides whether the loop keeps up.
        ``clock``: callable returning the local time stamped as ``preprocessed`` (default: none).
        """
        chunks = [c for c in chunks if c[0].shape[1]]
        if not chunks:
            return []
        for samples, ts, arrival in chunks:
            self._arrivals.append((float(ts[0]), float(ts[-1]), arrival))
            self._held.append((samples[self.picks], ts))
            self._n_held += ts.size
        needed = self.pre.inputs_needed(self.windower.samples_needed)
        if self.pre.n_in + self._n_held < needed and self._n_held < self._max_held:
            return []
        held, self._held, self._n_held = self._held, [], 0
        if len(held) == 1:
            samples, timestamps = held[0]
        else:
            samples = np.concatenate([c[0] for c in held], axis=1)
            timestamps = np.concatenate([c[1] for c in held])
        self.windower.push_input(samples)  # raw-input quality runs (flat-line, rail) of the windowing rule
        y, ty = self.pre.push(samples, timestamps)
        if y.shape[1] == 0:
            return []
        windows = self.windower.push(y, ty)
        done = clock() if clock is not None and windows else float("nan")
        last_arrival = chunks[-1][2]
        out = []
        for w in windows:
            _, source_time, arrival = self._chunk_of(w.t_end)
            out.append(PendingWindow(self, w, arrival, last_arrival, source_time, done))
        self.n_windows += len(out)
        # Windows still to come end after ty[-1]; older arrival records can never be asked for
        # again (without this they pile up while the windower drops windows, e.g. during a NaN span).
        self._chunk_of(ty[-1])
        return out

    def _chunk_of(self, t: float) -> tuple[float, float, float]:
        """The chunk holding the newest input sample at or before source time ``t`` (the last chunk
        whose first sample is at or before it); forgets the chunks before it."""
        while len(self._arrivals) > 1 and self._arrivals[1][0] <= t:
            self._arrivals.popleft()
        return self._arrivals[0]
