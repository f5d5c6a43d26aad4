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
from eegmamba.alignment import EuclideanReference
from eegmamba.channels import match_channels
from eegmamba.preprocessing import Preprocessor
from eegmamba.profiles import Profile
from eegmamba.windowing import Window, Windower


@dataclass(frozen=True)
class PendingWindow:
    """A window ready for inference, with the times (seconds) of its way here.

    ``source_time``: stream timestamp of the window's last input sample (the newest at or before
    ``window.t_end``; for ``eegmamba-replay`` and outlets that stamp samples when they are due, its
    due time, on the local clock for a local stream). ``arrival``: local clock (``pylsl.local_clock``)
    when the chunk holding that sample was pulled — the reference of the published ``latency_ms``.
    ``completed``: arrival of the newest chunk of the block that produced the window (the resampler
    has no look-ahead, so it equals ``arrival`` unless chunks queued up behind it).
    ``preprocessed``: local clock when preprocessing and windowing of that block were done.
    """

    pipeline: "ProfilePipeline"
    window: Window
    arrival: float
    completed: float
    source_time: float = float("nan")
    preprocessed: float = float("nan")


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
    alignment_state : dict, optional, a stored alignment reference (``EuclideanReference.state_dict``,
        a calibrated checkpoint's ``alignment_reference``): the stream starts aligned with it, no
        warm-up, and keeps updating it; ignored when the profile does not align
    """

    def __init__(self, profile: Profile, stream_key: str, stream_channels: list[str],
                 stream_sfreq: float, model_key: str, channel_map: dict[str, str] | None = None,
                 alignment_state: dict | None = None) -> None:
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
        ref = (EuclideanReference.from_state(alignment_state)
               if alignment_state is not None and profile.alignment.enabled else "causal")
        self.windower = Windower.from_profile(profile, in_sfreq=stream_sfreq, reference=ref)
        self.drops: Counter = Counter()
        self.n_windows = 0
        # per chunk: (first timestamp, last timestamp, arrival)
        self._arrivals: deque[tuple[float, float, float]] = deque()
        # picked raw chunks held back until the next window's last input sample is among them
        self._held: list[tuple[np.ndarray, np.ndarray, tuple]] = []
        self._n_held = 0
        self._last_chunk_size = 1
        self._period = 1.0 / stream_sfreq  # seconds per sample, as the timestamps pace them
        self._max_held = max(1, int(stream_sfreq))  # process at least every second of input

    def set_input_rate(self, sfreq: float) -> None:
        """Process the stream at ``sfreq`` Hz from now on (a measured rate accepted in place of the
        declared one); starts over like :meth:`reset`."""
        self.reset(count_as="unverified")
        self.pre = Preprocessor(self.profile, sfreq, len(self.picks))
        ref = self.windower.reference  # the same person: keep the alignment reference
        self.windower = Windower.from_profile(self.profile, in_sfreq=sfreq,
                                              reference=ref if ref is not None else "causal")
        self._max_held = max(1, int(sfreq))
        self.reset()  # fresh state for the new step objects

    def reset(self, count_as: str | None = None) -> None:
        """Start over after a stream loss: a window never spans an outage. ``count_as``: count the
        windows begun and left incomplete (samples held or buffered) as dropped for this reason."""
        if count_as is not None:
            n_out = self.pre.n_outputs(self.pre.n_in + self._n_held)
            self.drops[count_as] += self.windower.n_started(n_out)
        self.pre.reset()
        self._merge_windower_drops()
        self.windower.reset()
        self._arrivals.clear()
        self._held, self._n_held = [], 0

    def _merge_windower_drops(self) -> None:
        self.drops.update(self.windower.drops)
        self.windower.drops.clear()

    def alignment_age(self) -> dict | None:
        """The Euclidean-alignment reference's age (``EuclideanReference.age``, ``since_update_s``
        on the stream clock) for the dashboard; None without alignment."""
        ref = self.windower.reference
        return None if ref is None else ref.age(self._arrivals[-1][1] if self._arrivals else None)

    def all_drops(self) -> Counter:
        return self.drops + self.windower.drops

    def push_many(self, chunks: list[tuple], clock=None, hold: str | None = None) -> list[PendingWindow]:
        """Feed several chunks ``(samples (C_stream, n), timestamps (n,), arrival[, breaks])`` at
        once; ``breaks``: ``(i, reason)`` timeline breaks before sample i of the chunk.

        Chunks are held back until the input sample that completes the next window is among them
        (or a second of input is held), then go through the preprocessing step as one block. The
        step is chunk-invariant and has no look-ahead, so the windows and the moment each comes out
        are the same as pushing every chunk at once, while the cost per stream follows the windows
        (every hop), not the chunks (10-sample chunks at 160 Hz: 8 calls per 0.5-s hop → 1): with
        many streams that cost, not only the model, decides whether the loop keeps up.
        ``clock``: callable returning the local time stamped as ``preprocessed`` (default: none).
        ``hold``: the stream is not to be classified now (``Inlet.hold``): every window the samples
        complete, cut or not, is counted as dropped with this reason (the root cause, e.g. ``units``
        rather than the ``flat_run`` that volts look like) and none is returned.
        """
        chunks = [c for c in chunks if c[0].shape[1]]
        if not chunks:
            return []
        for c in chunks:
            samples, ts, arrival = c[0], c[1], c[2]
            breaks = tuple(c[3]) if len(c) > 3 else ()
            if any(r == "jump" for _, r in breaks):
                self._arrivals.clear()  # the clock jumped: older records no longer order by time
            if self._arrivals and not breaks and ts[-1] > self._arrivals[-1][1]:
                self._period = (float(ts[-1]) - self._arrivals[-1][1]) / ts.size
            self._arrivals.append((float(ts[0]), float(ts[-1]), arrival))
            self._held.append((samples[self.picks], ts, breaks))
            self._n_held += ts.size
            self._last_chunk_size = ts.size
        needed = self.pre.inputs_needed(self.windower.samples_needed)
        if self.pre.n_in + self._n_held < needed and self._n_held < self._max_held:
            return []
        return self._process_held(clock, hold)

    def flush(self, clock=None, hold: str | None = None) -> list[PendingWindow]:
        """Preprocess the held chunks now rather than with the chunk completing the next window
        (same windows and samples: the step is chunk-invariant), so that chunk has only its own
        samples left to process. ``clock``, ``hold``: as in :meth:`push_many`."""
        return self._process_held(clock, hold) if self._held else []

    def due(self) -> float | None:
        """Estimated local time (``pylsl.local_clock``) at which the input sample completing the next
        window arrives, if chunks keep the newest chunk's size and pace: its arrival plus the chunks
        until the one holding that sample, at the pace of the timestamps (the nominal rate, or
        faster for a replay at ``--speed``). ``None`` before any chunk."""
        if not self._arrivals:
            return None
        missing = self.pre.inputs_needed(self.windower.samples_needed) - self.pre.n_in - self._n_held
        per_chunk = self._last_chunk_size
        return self._arrivals[-1][2] + -(-max(missing, 0) // per_chunk) * per_chunk * self._period

    def _process_held(self, clock, hold: str | None) -> list[PendingWindow]:
        held, self._held, self._n_held = self._held, [], 0
        breaks, offset = [], 0
        for _, ts, b in held:
            breaks += [(offset + i, r) for i, r in b]
            offset += ts.size
        if len(held) == 1:
            samples, timestamps = held[0][0], held[0][1]
        else:
            samples = np.concatenate([c[0] for c in held], axis=1)
            timestamps = np.concatenate([c[1] for c in held])
        self.windower.push_input(samples, breaks)  # breaks and raw-input quality runs (windowing rule)
        y, ty = self.pre.push(samples, timestamps)
        if y.shape[1] == 0:
            return []
        before = Counter(self.windower.drops) if hold is not None else None
        windows = self.windower.push(y, ty)
        if hold is not None:
            self.drops[hold] += len(windows) + sum((self.windower.drops - before).values())
            self.windower.drops = before
            self._chunk_of(ty[-1])
            return []
        done = clock() if clock is not None and windows else float("nan")
        last_arrival = self._arrivals[-1][2]
        out = []
        for w in windows:
            arrival = self._chunk_of(w.t_end)[2]
            last_input = timestamps[max(0, np.searchsorted(timestamps, w.t_end, side="right") - 1)]
            out.append(PendingWindow(self, w, arrival, last_arrival, float(last_input), done))
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
