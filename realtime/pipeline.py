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
    """A window ready for inference.

    ``arrival``: local clock (``pylsl.local_clock``) when the window's last sample arrived — the
    reference of the published ``latency_ms``. ``completed``: when the chunk that let the window be
    computed arrived (later by the resampler's look-ahead, ~10 input samples); ``push - completed``
    is the pure processing latency.
    """

    pipeline: "ProfilePipeline"
    window: Window
    arrival: float
    completed: float


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
        self._arrivals: deque[tuple[float, float]] = deque()  # (last input timestamp, arrival)

    def set_input_rate(self, sfreq: float) -> None:
        """Process the stream at ``sfreq`` Hz from now on (a measured rate accepted in place of the
        declared one); starts over like :meth:`reset`."""
        self._merge_windower_drops()
        self.pre = Preprocessor(self.profile, sfreq, len(self.picks))
        self.windower = Windower.from_profile(self.profile, in_sfreq=sfreq)
        self.reset()

    def reset(self) -> None:
        """Start over after a stream loss: a window never spans an outage."""
        self.pre.reset()
        self._merge_windower_drops()
        self.windower.reset()
        self._arrivals.clear()

    def _merge_windower_drops(self) -> None:
        self.drops.update(self.windower.drops)
        self.windower.drops.clear()

    def all_drops(self) -> Counter:
        return self.drops + self.windower.drops

    def push_many(self, chunks: list[tuple]) -> list[PendingWindow]:
        """Feed several chunks ``(samples (C_stream, n), timestamps (n,), arrival[, breaks])`` at
        once; ``breaks``: ``(i, reason)`` timeline breaks before sample i of the chunk.

        They go through the preprocessing step as one block (it is chunk-invariant, so the output is
        the same), which keeps the per-call cost from growing with the number of chunks a slow step
        finds waiting: with many streams that cost, not the model, decides whether the loop keeps up.
        """
        chunks = [c for c in chunks if c[0].shape[1]]
        if not chunks:
            return []
        breaks, offset = [], 0
        for c in chunks:
            ts, arrival = c[1], c[2]
            if len(c) > 3 and c[3]:
                breaks += [(offset + i, r) for i, r in c[3]]
                if any(r == "jump" for _, r in c[3]):
                    self._arrivals.clear()  # the clock jumped: older records no longer order by time
            offset += ts.size
            self._arrivals.append((float(ts[-1]), arrival))
        if len(chunks) == 1:
            samples, timestamps = chunks[0][0], chunks[0][1]
        else:
            samples = np.concatenate([c[0] for c in chunks], axis=1)
            timestamps = np.concatenate([c[1] for c in chunks])
        x = samples[self.picks]
        self.windower.push_input(x, breaks)  # breaks and raw-input quality runs (windowing rule)
        y, ty = self.pre.push(x, timestamps)
        if y.shape[1] == 0:
            return []
        last_arrival = chunks[-1][2]
        out = [PendingWindow(self, w, self._arrival_of(w.t_end), last_arrival)
               for w in self.windower.push(y, ty)]
        self.n_windows += len(out)
        # Windows still to come end after ty[-1]; older arrival records can never be asked for
        # again (without this they pile up while the windower drops, e.g. during a NaN span).
        self._forget_arrivals_before(ty[-1])
        return out

    def _forget_arrivals_before(self, t: float) -> None:
        while len(self._arrivals) > 1 and self._arrivals[0][0] < t:
            self._arrivals.popleft()

    def _arrival_of(self, t: float) -> float:
        """Arrival time of the first chunk whose last sample is at or after source time ``t``."""
        self._forget_arrivals_before(t)
        return self._arrivals[0][1]


def newest_only(pending: list[PendingWindow]) -> list[PendingWindow]:
    """Keep the newest window of each pipeline; count the older ones as dropped (``stale``)."""
    newest: dict[int, PendingWindow] = {}
    for p in pending:
        key = id(p.pipeline)
        if key in newest:
            newest[key].pipeline.drops["stale"] += 1
        newest[key] = p
    return list(newest.values())
