"""A model's conv layers grouped into stages: the index's sections and what ``--per-stage`` picks from.

The names win where a model's names mark stages across several blocks (ResNet's and DenseNet's
``convN_``, VGG's ``blockN_``, ConvNeXt's ``stage_N``): ResNet50V2's stride-2 ``conv2_block3_2_conv``
belongs to conv2, as its authors and the seed post count it, though its output is already at the
next resolution. Otherwise a stage is the conv layers at one output resolution. Plain data in,
plain data out: no framework here.
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass, replace
from difflib import get_close_matches
from typing import Sequence

from .errors import UsageError
from .layers import LayerInfo, ModelInfo


@dataclass(frozen=True)
class NameRule:
    """A naming scheme that numbers stages, not blocks."""

    label: str  # as the index shows it: "convN_"
    pattern: re.Pattern
    stage_name: str  # "conv{}"


NAME_RULES = (
    NameRule("convN_", re.compile(r"^conv(\d+)_"), "conv{}"),  # ResNet, DenseNet
    NameRule("blockN_", re.compile(r"^block(\d+)_"), "block{}"),  # VGG (Xception's blockN numbers blocks)
    NameRule("stage_N", re.compile(r"(?:^|_)stage_?(\d+)(?:_|$)"), "stage_{}"),  # ConvNeXt
)
STEM = "stem"


@dataclass(frozen=True)
class Stage:
    name: str
    layers: tuple[int, ...]  # LayerInfo.index of its conv layers, in model order
    sides: tuple[tuple[int, ...], ...]  # the distinct output sizes (spatial), in model order; () when unknown
    stride: tuple | None  # input pixels per output step of most of its layers (None: not known)
    receptive_field: tuple[float, float] | None = None  # its layers' smallest and largest, in input pixels

    @property
    def slug(self) -> str:
        """The index's anchor: ``stage-conv2``; names are the model's, so only safe characters stay."""
        return "stage-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", self.name).strip("-") or "unnamed")

    @property
    def resolution(self) -> str:
        """``56 px``, ``56-28 px`` (a stride-2 conv at a stage's end), ``240x320 px``, or ``1/8 of the input``."""
        if self.sides:
            words = [str(side[0]) if len(set(side)) == 1 else "x".join(map(str, side)) for side in self.sides]
            return "-".join(dict.fromkeys([words[0], words[-1]])) + " px"
        if self.stride:
            step = self.stride[0] if len(set(self.stride)) == 1 else "x".join(map(str, self.stride))
            return f"1/{step} of the input"
        return "resolution unknown"


@dataclass(frozen=True)
class Stages:
    stages: tuple[Stage, ...]
    rule: str  # how they were found, for the index: "the layer names (convN_)" or "output resolution"

    def stage_of(self, index: int) -> Stage | None:
        for stage in self.stages:
            if index in stage.layers:
                return stage
        return None


# --------------------------------------------------------------------------- finding the stages


def _sides(info: LayerInfo) -> tuple[int, ...] | None:
    """The output's spatial size, or None when a side is free."""
    shape = info.output_shape
    if not shape or not isinstance(shape[0], (int, type(None))) or len(shape) < 3:
        return None
    spatial = shape[2:] if info.data_format == "channels_first" else shape[1:-1]
    return tuple(spatial) if all(isinstance(side, int) for side in spatial) else None


def _stride(info: LayerInfo) -> tuple | None:
    """Input pixels per output step; None where the layer sees a pooled vector (squeeze-and-excitation)
    or is not reached from the input."""
    return None if info.effective_stride is None else tuple(info.effective_stride)


def _stage(name: str, members: Sequence[LayerInfo]) -> Stage:
    # a squeeze-and-excitation conv's 1x1 output is not the stage's resolution
    sides = tuple(dict.fromkeys(s for s in (_sides(info) for info in members if _stride(info)) if s is not None))
    strides = [s for s in (_stride(info) for info in members) if s is not None]
    stride = max(set(strides), key=strides.count) if strides else None
    fields = [max(info.receptive_field) for info in members if info.receptive_field]
    return Stage(name=name, layers=tuple(info.index for info in members), sides=sides, stride=stride,
                 receptive_field=(min(fields), max(fields)) if fields else None)


def _by_names(conv: Sequence[LayerInfo], rule: NameRule) -> Stages | None:
    """Stages from the names, when they mark fewer stages than the model has resolutions (else they
    number blocks: Xception's 14 ``blockN`` over 6 resolutions) and most conv layers carry them."""
    numbers = [rule.pattern.search(info.name) for info in conv]
    keys = [int(match.group(1)) if match else None for match in numbers]
    named = [key for key in keys if key is not None]
    resolutions = {_stride(info) for info in conv} - {None}
    if len(named) * 2 < len(conv) or named != sorted(named):
        return None
    if not 2 <= len(set(named)) <= max(len(resolutions), 2):
        return None
    # a layer without the name joins the named stage after it when it already has that stage's
    # resolution (ConvNeXt's downsampling conv), else the one before it (DenseNet's transition conv);
    # those before the first name are the stem
    assigned: list[str] = []
    for position, (info, key) in enumerate(zip(conv, keys)):
        if key is not None:
            assigned.append(rule.stage_name.format(key))
            continue
        after = next((i for i in range(position + 1, len(conv)) if keys[i] is not None), None)
        if not assigned or assigned[-1] == STEM:
            assigned.append(STEM)
        elif after is not None and _stride(info) is not None and _stride(conv[after]) == _stride(info):
            assigned.append(rule.stage_name.format(keys[after]))
        else:
            assigned.append(assigned[-1])
    order = list(dict.fromkeys(assigned))
    return Stages(
        stages=tuple(_stage(name, [info for info, a in zip(conv, assigned) if a == name]) for name in order),
        rule=f"the layer names ({rule.label})",
    )


def _by_resolution(conv: Sequence[LayerInfo], upsamples: bool) -> Stages:
    """One stage per output resolution (input pixels per output step, so valid padding's 149 and
    147 px are one stage); a conv that sees a pooled vector stays with the layer before it. A model
    that upsamples (a decoder) gets a new stage at each change instead, so its way back up is not
    merged with its way down."""
    keys: list = []
    for info in conv:
        stride = _stride(info)
        keys.append(stride if stride is not None else (keys[-1] if keys else None))
    first = next((key for key in keys if key is not None), None)
    keys = [first if key is None else key for key in keys]
    if upsamples:
        runs, names = [], []
        for key in keys:
            if not runs or runs[-1] != key:
                runs.append(key)
            names.append(len(runs) - 1)
    else:
        order = list(dict.fromkeys(keys))
        names = [order.index(key) for key in keys]
    groups: dict[int, list[LayerInfo]] = {}
    for info, name in zip(conv, names):
        groups.setdefault(name, []).append(info)
    stages = [_stage("", members) for members in groups.values()]
    return Stages(stages=tuple(replace(stage, name=_resolution_name(stage, stages)) for stage in stages),
                  rule="output resolution")


def _resolution_name(stage: Stage, stages: list[Stage]) -> str:
    """``56 px``; a decoder's second stage at one resolution gets ``56 px (2)``."""
    same = [other for other in stages if other.resolution == stage.resolution]
    base = stage.resolution if stage.sides else (f"stride {'x'.join(map(str, stage.stride))}" if stage.stride else "all")
    return base if len(same) == 1 else f"{base} ({same.index(stage) + 1})"


def find_stages(model_info: ModelInfo) -> Stages:
    """The stages of every conv layer of the model, by the first naming scheme that marks stages,
    else by output resolution."""
    conv = list(model_info.conv_layers)
    if not conv:
        return Stages(stages=(), rule="output resolution")
    for rule in NAME_RULES:
        found = _by_names(conv, rule)
        if found is not None:
            return found
    upsamples = any(info.conv_kind == "transpose" or info.type_name.startswith("UpSampling")
                    for info in model_info.layers)
    return _by_resolution(conv, upsamples)


# --------------------------------------------------------------------------- choosing layers


def larger_than_pointwise(info: LayerInfo) -> bool:
    """A kernel wider than 1x1 (the seed post's "skipping 1x1 convs"): Keras kernels start with
    their spatial sides whatever the data format."""
    if not info.kernel_shape:
        return False
    spatial = len(info.kernel_shape) - 2
    return math.prod(info.kernel_shape[:spatial]) > 1


def last_per_stage(selected: Sequence[LayerInfo], stages: Stages) -> tuple[list[LayerInfo], tuple[str, ...]]:
    """In each stage, the last selected conv layer whose kernel is larger than 1x1; with the names
    of the stages that gave none."""
    picked, empty = [], []
    chosen = {info.index: info for info in selected}
    for stage in stages.stages:
        candidates = [chosen[i] for i in stage.layers if i in chosen and larger_than_pointwise(chosen[i])]
        if candidates:
            picked.append(candidates[-1])
        elif any(i in chosen for i in stage.layers):
            empty.append(stage.name)
    order = {info.index: position for position, info in enumerate(selected)}
    return sorted(picked, key=lambda info: order[info.index]), tuple(empty)


def is_pattern(name: str) -> bool:
    return any(character in name for character in "*?[")


def select_layers(model_info: ModelInfo, names: Sequence[str]) -> list[LayerInfo]:
    """The conv layers to draw: all of them, or those named exactly or matched by a shell-style
    pattern (``conv*_block*_2_conv``), against the plain and the qualified (``sub/layer``) name."""
    conv = list(model_info.conv_layers)
    if not names:
        return conv
    wanted: set[int] = set()
    unmatched = []
    for name in names:
        exact = [info for info in conv if name in (info.name, info.qualified_name)]
        if exact:
            wanted.add(exact[0].index)
            continue
        matched = [info.index for info in conv if is_pattern(name) and (
            fnmatch.fnmatchcase(info.name, name) or fnmatch.fnmatchcase(info.qualified_name, name))]
        if matched:
            wanted.update(matched)
        else:
            unmatched.append(name)
    if unmatched:
        raise UsageError("--layers", "; ".join(_no_match(name, conv) for name in unmatched))
    return [info for info in conv if info.index in wanted]


def _no_match(name: str, conv: Sequence[LayerInfo]) -> str:
    """``no conv layer matches 'conv9*' (closest: conv5_block3_2_conv, ...)``."""
    names = list(dict.fromkeys(n for info in conv for n in (info.name, info.qualified_name)))
    probe = name.replace("*", "").replace("?", "") if is_pattern(name) else name
    close = get_close_matches(probe, names, n=5, cutoff=0.4) or names[:5]
    what = f"no conv layer matches {name}" if is_pattern(name) else f"no conv layer named {name}"
    return f"{what} (closest: {', '.join(close)})" if close else f"{what} (the model has no conv layers)"


def choose_layers(model_info: ModelInfo, names: Sequence[str], per_stage: str) -> tuple[list[LayerInfo], Stages,
                                                                                          tuple[str, ...]]:
    """``--layers`` first, then ``--per-stage`` among the layers it kept; with the stages and the
    names of stages that gave no layer."""
    stages = find_stages(model_info)
    selected = select_layers(model_info, names)
    if per_stage == "last":
        selected, empty = last_per_stage(selected, stages)
        return selected, stages, empty
    return selected, stages, ()
