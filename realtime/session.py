"""Assemble a live session from user options: replay, stream resolution, checkpoints, pipelines.

Kept apart from the CLI so tests and tools build exactly what ``eegmamba-live`` builds.
"""

from __future__ import annotations

import math
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eegmamba._checks import UserInputError
from eegmamba.profiles import Profile, load_profile
from realtime.acquisition import Acquisition, AcquisitionConfig, StreamQuery
from realtime.inference import InferenceEngine
from realtime.live import GroundTruth, LiveLoop
from realtime.outlets import DecisionLog
from realtime.pipeline import ProfilePipeline, check_stream_against
from realtime.replay import Replay

ASSETS = Path(__file__).resolve().parents[1] / "eegmamba" / "assets" / "demo"
DEMO_RECORDING = ASSETS / "S001R08.edf"
DEMO_CHECKPOINT = ASSETS / "mi_checkpoint"
DEMO_PROFILE = "motor_imagery"


@dataclass
class SessionOptions:
    """Everything ``eegmamba-live`` accepts (see ``realtime.cli_live`` for the meaning)."""

    profiles: list[str] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    stream: str | None = None
    stype: str | None = None
    source_id: str | None = None
    device: str = "auto"
    replay: str | None = None
    demo: bool = False
    speed: float = 1.0
    log: str | None = None
    channel_map: dict[str, str] = field(default_factory=dict)
    resolve_timeout_s: float = 10.0
    inference_delay_s: float = 0.0
    stall_s: float = 2.0


def parse_channel_map(items: list[str]) -> dict[str, str]:
    """``["C3=EEG 1", ...]`` → ``{"C3": "EEG 1"}``; bad items are a user error."""
    out = {}
    for item in items:
        name, sep, target = item.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise UserInputError(f"--channel-map expects PROFILE_CHANNEL=STREAM_CHANNEL, got {item!r}")
        out[name.strip()] = target.strip()
    return out


def replay_ground_truth(replay: Replay, profile: Profile) -> GroundTruth | None:
    """Label of a window from the replayed file's annotations (None where not one class)."""
    from eegmamba.data.labels import sample_labels
    from eegmamba.data.readers import read_recording

    try:
        labels = sample_labels(read_recording(replay.path, profile), profile)
    except UserInputError:
        return None  # channels or labels of this profile are not in the file: nothing to score
    if (labels < 0).all():
        return None
    n = labels.size
    rate = replay.sfreq * replay.speed

    def truth(t_start: float, t_end: float) -> str | None:
        k0 = int(math.floor((t_start - replay.t0) * rate + 1e-6))
        k1 = int(math.floor((t_end - replay.t0) * rate + 1e-6))
        if k0 < 0 or k0 // n != k1 // n:
            return None
        seg = labels[k0 % n: k1 % n + 1]
        if seg.size == 0 or seg[0] < 0 or not np.all(seg == seg[0]):
            return None
        return profile.classes[int(seg[0])]

    return truth


class Session:
    """Owns the replay, acquisition, engine and loop of one run; ``close()`` releases them all."""

    def __init__(self, opts: SessionOptions) -> None:
        self.opts = opts
        self._stack = ExitStack()
        try:
            self._build()
        except BaseException:
            self._stack.close()
            raise

    def _build(self) -> None:
        o = self.opts
        names = list(o.profiles)
        checkpoints = list(o.checkpoints)
        replay_path = o.replay
        if o.demo:
            if not DEMO_RECORDING.is_file() or not DEMO_CHECKPOINT.is_dir():
                raise UserInputError(
                    f"the bundled demo is missing ({DEMO_RECORDING.name} or {DEMO_CHECKPOINT.name} "
                    f"under {ASSETS}); reinstall from a full checkout"
                )
            names = names or [DEMO_PROFILE]
            checkpoints = checkpoints or [str(DEMO_CHECKPOINT)]
            replay_path = replay_path or str(DEMO_RECORDING)
        if not names:
            raise UserInputError("no profile given: use --profile NAME (e.g. motor_imagery) or --demo")
        self.profiles = [load_profile(n) for n in names]
        if len(checkpoints) != len(self.profiles):
            if len(checkpoints) == 0 and all(p.name == DEMO_PROFILE for p in self.profiles):
                checkpoints = [str(DEMO_CHECKPOINT)] * len(self.profiles)
            else:
                raise UserInputError(
                    f"give one --checkpoint per --profile ({len(self.profiles)} profiles, "
                    f"{len(checkpoints)} checkpoints)"
                )
        self.engine = InferenceEngine(o.device, delay_s=o.inference_delay_s)
        models = []
        for profile, ckpt in zip(self.profiles, checkpoints):
            m = self.engine.load(ckpt)
            spec = m.model.config.tasks[0]
            check_stream_against(profile, spec.n_chans, spec.n_times, spec.sfreq, m.class_names,
                                 f"checkpoint {ckpt}")
            models.append(m)

        self.replay = None
        if replay_path is not None:
            self.replay = Replay(replay_path, repeat=math.inf if o.demo else 1, speed=o.speed,
                                 wait_for_consumer_s=10.0)
            self._stack.callback(self.replay.stop)
            self.replay.start()
            query = StreamQuery(name=self.replay.name, source_id=self.replay.source_id)
        elif o.stream or o.stype or o.source_id:
            query = StreamQuery(name=o.stream, stype=o.stype, source_id=o.source_id)
        else:
            query = StreamQuery(stype="EEG")

        self.acquisition = Acquisition(AcquisitionConfig(stall_s=o.stall_s))
        self._stack.callback(self.acquisition.stop)
        inlet = self.acquisition.add(query, timeout=o.resolve_timeout_s)
        pipelines = [
            ProfilePipeline(p, inlet.key, inlet.ch_names, inlet.sfreq, m.key, o.channel_map)
            for p, m in zip(self.profiles, models)
        ]
        truth = {}
        if self.replay is not None:
            for i, p in enumerate(self.profiles):
                t = replay_ground_truth(self.replay, p)
                if t is not None:
                    truth[i] = t
        log = DecisionLog(o.log) if o.log else None
        if log is not None:
            self._stack.callback(log.close)
        self.engine.warm_up()
        self.loop = LiveLoop(self.acquisition, self.engine, pipelines, log, truth)
        self._stack.callback(self.loop.close)
        self.acquisition.start()

    def finished(self) -> bool:
        """True once a finite replay has pushed everything and its last samples were processed."""
        if self.replay is None or self.replay.running:
            return False
        return all(h.last_sample_age_s is not None and h.last_sample_age_s > 1.0
                   for h in self.acquisition.health())

    def close(self) -> None:
        self._stack.close()
