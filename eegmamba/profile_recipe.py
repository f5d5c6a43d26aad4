"""The training-recipe sections of a profile: ``augmentation:`` and ``alignment:`` (validated
dataclasses; :mod:`eegmamba.profiles` parses the rest). ``ctx`` is the profile parser's context,
which names file and field in errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

AUGMENTATIONS = ("time_shift", "noise", "scale", "channel_dropout", "time_mask", "freq_shift",
                 "ft_surrogate")
"""Transforms an ``augmentation:`` section may declare, in the order they are applied (after
``mirror``); each takes ``p`` (probability per window) and ``magnitude`` (meaning per transform,
:mod:`eegmamba.augment`)."""


@dataclass(frozen=True)
class TransformSpec:
    """One augmentation: applied to each training window with probability ``p``; ``magnitude`` in
    the transform's unit (seconds, Hz, or a fraction; :mod:`eegmamba.augment`)."""

    p: float
    magnitude: float


@dataclass(frozen=True)
class AugmentationSpec:
    """Training-time augmentation (never live). ``transforms``: name → spec, applied in
    :data:`AUGMENTATIONS` order; ``mirror_p``: probability of the hemisphere mirror (each channel to
    its 10-10 mirror, the classes in each ``mirror_swap`` pair exchanged; 0 = off)."""

    transforms: Mapping[str, TransformSpec] = field(default_factory=dict)
    mirror_p: float = 0.0
    mirror_swap: tuple[tuple[str, str], ...] = ()

    @property
    def enabled(self) -> bool:
        return self.mirror_p > 0 or any(t.p > 0 for t in self.transforms.values())


ALIGNMENTS = ("none", "euclidean")
OFFLINE_REFERENCES = ("recording", "causal")


@dataclass(frozen=True)
class AlignmentSpec:
    """Euclidean alignment (He & Wu 2020) of each window's band-passed µV signal before
    normalization (:mod:`eegmamba.alignment`). ``method``: ``none`` or ``euclidean``.
    Live the reference is causal: the mean spatial covariance of the stream's clean windows, a plain
    mean until it holds ``warmup_s`` of signal, then a running mean with half-life ``halflife_s``
    seconds of signal; windows before that are dropped as ``alignment_warmup``.
    ``offline_reference``: the reference of training/evaluation windows: ``recording`` = the mean
    covariance of every clean window of the same recording (the person's own unlabelled data of
    that run; no window dropped), ``causal`` = exactly the live rule."""

    method: str = "none"
    warmup_s: float = 20.0
    halflife_s: float = 120.0
    offline_reference: str = "recording"

    @property
    def enabled(self) -> bool:
        return self.method != "none"



def parse_augmentation(d: Any, classes: tuple[str, ...], c: Any) -> AugmentationSpec:
    d = c.keys(d, "augmentation", {*AUGMENTATIONS, "mirror"})
    transforms = {}
    for name in AUGMENTATIONS:  # canonical order
        if name in d:
            t = c.keys(d[name], f"augmentation.{name}", {"p", "magnitude"}, {"p", "magnitude"})
            p = c.num(t["p"], f"augmentation.{name}.p", ge=0)
            if p > 1:
                raise c.fail(f"augmentation.{name}.p", f"must be <= 1, got {p:g}")
            mag = c.num(t["magnitude"], f"augmentation.{name}.magnitude", gt=0)
            if name in ("channel_dropout", "ft_surrogate") and mag > 1:
                raise c.fail(f"augmentation.{name}.magnitude", f"is a fraction, must be <= 1, got {mag:g}")
            if name == "scale" and mag >= 1:
                raise c.fail(f"augmentation.{name}.magnitude", f"must be < 1 (factor in [1-m, 1+m]), "
                                                               f"got {mag:g}")
            transforms[name] = TransformSpec(p, mag)
    m = c.keys(d.get("mirror") or {}, "augmentation.mirror", {"p", "swap"})
    mirror_p = c.num(m.get("p", 0.0), "augmentation.mirror.p", ge=0)
    if mirror_p > 1:
        raise c.fail("augmentation.mirror.p", f"must be <= 1, got {mirror_p:g}")
    swap = []
    for i, pair in enumerate(m.get("swap") or []):
        fld = f"augmentation.mirror.swap[{i}]"
        pair = c.str_list(pair, fld)
        if len(pair) != 2:
            raise c.fail(fld, f"must be a pair of class names, got {list(pair)}")
        for cls in pair:
            c.option(cls, fld, classes)
        swap.append(tuple(pair))
    flat = [x for pair in swap for x in pair]
    if len(set(flat)) != len(flat):
        raise c.fail("augmentation.mirror.swap", f"names a class twice: {flat}")
    if mirror_p > 0 and not swap:
        raise c.fail("augmentation.mirror.swap", "is required when mirror.p > 0 (which classes a "
                                                 "left/right mirror exchanges, e.g. [[left_fist, right_fist]])")
    return AugmentationSpec(transforms, mirror_p, tuple(swap))


def parse_alignment(d: Any, normalization: str, c: Any) -> AlignmentSpec:
    df = AlignmentSpec()
    d = c.keys(d, "alignment", {"method", "warmup_s", "halflife_s", "offline_reference"})
    spec = AlignmentSpec(
        c.option(d.get("method", df.method), "alignment.method", ALIGNMENTS),
        c.num(d.get("warmup_s", df.warmup_s), "alignment.warmup_s", gt=0),
        c.num(d.get("halflife_s", df.halflife_s), "alignment.halflife_s", gt=0),
        c.option(d.get("offline_reference", df.offline_reference), "alignment.offline_reference",
                 OFFLINE_REFERENCES),
    )
    if spec.enabled and normalization == "recording":
        raise c.fail("alignment.method", "euclidean needs normalization zscore or none (the "
                                         "recording scale is in µV, aligned signals are not)")
    return spec
