"""Activation maximisation: the input image each filter likes most (Erhan 2009; keras.io; lucid).

Three modes share one engine, as recipes of small parts (``ascent_parts``):

* ``fast`` is the seeds' method (keras.io "Visualizing what convnets learn") done well: start
  from grey noise, climb the mean activation of a filter with l2-normalised gradient steps,
  leave a border out of the loss, standardise for display.
* ``robust`` is the feature-visualisation practice of Olah et al. (Distill 2017) as lucid and
  lucent do it: the image is a Fourier spectrum scaled by 1/frequency with decorrelated colour,
  squashed into valid RGB by a sigmoid, seen through random pad/jitter/scale/rotate transforms,
  and optimised with Adam.
* ``balanced`` (the builder's default) is robust's image and optimiser in 20 steps (Adam with
  shorter memories), with the transforms as one resample; on the small canvases of the first
  layers it climbs the fast way. On trained networks it draws robust's textures and parts where fast draws noise, at
  about fast's cost (benchmarks/quality_benchmark.py).

Every picture is also measured under a few fixed random shifts, scales and rotations, and for
its high-frequency power (``quality``): activation alone cannot tell a feature from noise.

What the engine adds to all:

* many filters at once, one canvas per filter (the same result as one at a time, a fraction of
  the calls);
* one replay of the model's graph from an input of any size for all its conv layers
  (``AscentTrunk``), and one traced step (and measurement) a layer, or one for a group of layers of close cost
  when their ascents are short (``AscentGroup``): in a 100-layer model tracing, not arithmetic,
  was most of the time;
* a canvas sized from the layer's receptive field (a block1 filter sees 3 to 5 pixels and does
  not need 180x180);
* a batch size chosen from the memory the layer's activations take and a bound on the time one
  step takes (so Ctrl-C is honoured within seconds);
* the canvas lives in pixel space (0..255 RGB) with the model's own preprocessing inside the
  gradient, so step sizes mean the same for every model and caffe-style (BGR) models show
  their true colours;
* a filter that is off everywhere (its ReLU output and so its gradient are zero) climbs its
  pre-activation value (lucid's ``_pre_relu``) until it turns on, then its real output. The
  number reported is always the layer's real output.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..ascent_rules import recipe_name
from ..config import ASCENT_MODES
from .keras_graph import resolve_layer
from ..layers import LayerInfo
from .units import rescue_split, response_floor, unit_functions
from .activations import ascent_chain, free_size_values, graph_safe, reads_channels_first
from .ascent_parts import LucidTransforms, recipe, resample
from .framework import compile_function, trace, with_gradients, without_gradients
from .quality import MEASURE_DRAWS, high_frequency_share, measurement_matrices

ASSUMED_GFLOPS = 150.0  # a CPU rate to bound the time of one step (this 2-core AVX-512 machine: 190-590)
ASSUMED_ACCELERATOR_GFLOPS = 20000.0  # a GPU's float32 rate, modest for an H100 (about 60 TFLOP/s)
STEP_SECONDS = 2.0


# Each mode's own steps and step size. fast: keras.io's 30 steps of 10 (on its [-1, 1] scale);
# robust: lucid's Adam 0.05, 128 steps; balanced: robust's parts in 20 steps of Adam 0.25 with
# shorter memories (betas 0.5 and 0.9 instead of Adam's 0.9 and 0.999). With Adam's own betas the
# momentum lags behind a 30-step climb: on the deep layers of trained MobileNetV2 and Xception
# backbones these 20 steps keep at least the response under transforms that 30 steps of Adam 0.15
# kept (benchmarks/speed_candidates.py), at two thirds of the arithmetic. A larger rate alone did
# not climb faster, nor did fewer steps on smaller, cropped or pooled canvases.
MODE_STEPS = {"fast": 30, "balanced": 20, "robust": 128}
MODE_RATES = {"fast": 10.0, "balanced": 0.25, "robust": 0.05}
ADAM_BETAS = (0.9, 0.999)
MODE_BETAS = {"fast": ADAM_BETAS, "balanced": (0.5, 0.9), "robust": ADAM_BETAS}


def small_canvas_rate(steps: int) -> float:
    """balanced's first layers climb the fast way (ascent_rules.SMALL_CANVAS) in balanced's steps,
    as far as fast's 30 steps of 10 went (20 steps of 15); 30 steps or more: fast's own 10."""
    share = min(MODE_STEPS["fast"] / MODE_STEPS["balanced"], max(1.0, MODE_STEPS["fast"] / max(1, steps)))
    return MODE_RATES["fast"] * share

# balanced as it was before issue 30 (30 steps of Adam 0.15, Adam's betas): still reachable, to measure
BALANCED_30 = {"mode": "balanced", "steps": 30, "learning_rate": 0.15, "adam_betas": ADAM_BETAS}


@dataclass(frozen=True)
class AscentSettings:
    mode: str = "fast"
    steps: int | None = None  # None: the mode's own (MODE_STEPS)
    learning_rate: float | None = None  # None: the mode's own (MODE_RATES)
    seed: int = 0
    rescue_stuck: bool = True
    min_canvas: int = 32
    # 96, not lucid's 128: cost grows with the square of the side, and at the keras.io step size
    # VGG16's block5_conv3 reached a higher mean activation on 96 px than on 128 px canvases
    # (2.33 against 2.12 on 8 filters) for 56 % of the work (see benchmarks/ and the README).
    max_canvas: int = 96
    fixed_canvas: tuple[int, int] | None = None  # force a canvas (the seeds use 180x180)
    memory_budget: int | None = None  # bytes for one batch's activations; None: from the machine's memory
    batch_size: int | None = None  # None: planned from the memory budget and the step time
    noise_amplitude: float = 10.0  # fast: grey 128 +- this many pixel levels, as the seeds start
    adam_betas: tuple[float, float] | None = None  # None: the mode's own (MODE_BETAS)
    # the accelerator's total memory, read once by the build's driver (framework.device_memory);
    # None: the CPU. Total, not free: a rerun plans the same batches and finds them in the cache.
    device_memory: int | None = None
    # what the steps compute in (``climbing_precision``): "float32"; "bfloat16" (a replay of the
    # model in bfloat16); "mixed": bfloat16 where a layer's convolutions are dense enough to gain
    # from a CPU's bfloat16 matrix units, float32 elsewhere. The measure after the climb, and with
    # it every number and verdict, is float32 in all three.
    precision: str = "float32"

    @property
    def step_count(self) -> int:
        return self.steps if self.steps is not None else MODE_STEPS[self.mode]

    @property
    def rate(self) -> float:
        return self.learning_rate if self.learning_rate is not None else MODE_RATES[self.mode]

    @property
    def betas(self) -> tuple[float, float]:
        return tuple(self.adam_betas) if self.adam_betas is not None else MODE_BETAS[self.mode]


@dataclass(frozen=True)
class AscentResult:
    filter_indices: tuple[int, ...]
    images: np.ndarray  # uint8 (F, h, w, C), ready to show
    activations: np.ndarray  # float32 (F,), mean layer output (border excluded) on the final canvas
    transformed: np.ndarray  # float32 (F,), the same, mean over the quality measure's transforms
    high_frequency: np.ndarray  # float32 (F,), the pictures' share of power in the top octave
    canvas_hw: tuple[int, int]
    batch_size: int
    flops: float  # floating-point operations spent (forward and input-gradient passes)


@dataclass(frozen=True)
class BatchResult:
    """One batch's filters, pictures and measures: a unit of work's result (plain arrays)."""

    filter_indices: tuple[int, ...]
    images: np.ndarray  # uint8 (F, h, w, C)
    activations: np.ndarray  # float32 (F,)
    transformed: np.ndarray  # float32 (F,)
    high_frequency: np.ndarray  # float32 (F,)

    @classmethod
    def join(cls, parts: list["BatchResult"]) -> "BatchResult":
        return cls(tuple(f for part in parts for f in part.filter_indices),
                   np.concatenate([part.images for part in parts]),
                   *(np.concatenate([getattr(part, name) for part in parts])
                     for name in ("activations", "transformed", "high_frequency")))

    def to_npz(self, stream) -> None:
        np.savez(stream, filter_indices=np.asarray(self.filter_indices, np.int64), images=self.images,
                 activations=self.activations, transformed=self.transformed, high_frequency=self.high_frequency)

    @classmethod
    def from_npz(cls, stored) -> "BatchResult":
        return cls(tuple(int(f) for f in stored["filter_indices"]), stored["images"], stored["activations"],
                   stored["transformed"], stored["high_frequency"])


# --------------------------------------------------------------------------- planning


def _physical_memory() -> int:
    """The machine's memory. The batch plan rests on it, not on what is free at the moment: the
    plan decides the units of work (and so what a rerun finds in the cache) and must come out
    the same on every run of this machine, whatever else holds memory (a Ray object store)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def _outputs_per_pixel(layer: LayerInfo, pixels: float) -> float:
    """Output values per input pixel: from the output shape at the model's input size where it is
    known (a squeeze-and-excitation conv after a global pooling has one value per channel, not one
    per position), else from the effective stride."""
    shape = layer.output_shape
    spatial = shape[2:] if layer.data_format == "channels_first" else shape[1:-1]
    if spatial and all(isinstance(size, int) for size in spatial):
        return (layer.filters or 0) * float(np.prod(spatial)) / pixels
    stride = max(layer.effective_stride or (1,))
    return (layer.filters or 0) / float(stride * stride)


@dataclass(frozen=True)
class LayerCost:
    """What one input pixel of a canvas costs up to the layer: FLOPs, conv output values and
    bytes of activations."""

    flops_per_pixel: float
    bytes_per_pixel: float
    outputs_per_pixel: float = 1.0

    @classmethod
    def of(cls, upstream: list[LayerInfo], input_hw: tuple[int, int]) -> "LayerCost":
        """From the conv layers up to and including the target (their FLOPs at ``input_hw``)."""
        pixels = float(input_hw[0] * input_hw[1])
        flops = sum(layer.flops for layer in upstream) / pixels
        elements = sum(_outputs_per_pixel(layer, pixels) for layer in upstream)
        # forward value, pre-activation and gradient of every conv output, float32
        return cls(flops_per_pixel=flops, bytes_per_pixel=3 * 4 * elements, outputs_per_pixel=max(elements, 1e-9))

    @property
    def flops_per_output(self) -> float:
        """The convolutions' density up to the layer: FLOPs per conv output value (VGG16's 3x3
        convs: about 2,000; MobileNetV2's depthwise and narrow 1x1 convs: about 60)."""
        return self.flops_per_pixel / self.outputs_per_pixel

    def step_flops(self, canvas_hw: tuple[int, int]) -> float:
        """One ascent step on one canvas: a forward and an input-gradient pass."""
        return 2.0 * self.flops_per_pixel * canvas_hw[0] * canvas_hw[1]


# bfloat16 pays where the convolutions are dense: on this AMX CPU one VGG16, ResNet50(V2),
# InceptionV3, DenseNet121 or Xception layer's default climb took 0.32-0.66 of its float32 time
# (476-2,161 FLOPs an output value), a MobileNetV2 or EfficientNetB0 layer's 1.3-1.5 times
# (51-99: memory-bound, and bfloat16 adds casts). benchmarks/bf16_models.py.
BFLOAT16_MIN_DENSITY = 300.0


def climbing_precision(settings: AscentSettings, cost: LayerCost) -> str:
    """What a group's steps compute in: "mixed" settings resolved by the group's density."""
    if settings.precision == "mixed":
        return "bfloat16" if cost.flops_per_output >= BFLOAT16_MIN_DENSITY else "float32"
    return settings.precision


def plan_canvas(info: LayerInfo, input_hw: tuple[int, int], free_size: bool, settings: AscentSettings) -> tuple[int, int]:
    """About twice the receptive field, within [min_canvas, max_canvas], a multiple of 8.

    A model that cannot be replayed at a free size only takes its own input size.
    """
    if not free_size:
        return input_hw
    if settings.fixed_canvas is not None:
        return settings.fixed_canvas
    field = max(info.receptive_field or (max(input_hw),))
    side = min(settings.max_canvas, max(settings.min_canvas, 2 * field))
    side = int(math.ceil(side / 8.0) * 8)
    return side, side


def plan_canvases(layers: list[LayerInfo], input_hw: tuple[int, int], free_size: bool,
                  settings: AscentSettings) -> dict[int, tuple[int, int]]:
    """``plan_canvas`` for each layer, except that a layer without a receptive field (after a
    global pooling, like a squeeze-and-excitation conv, which sees all of the canvas of the layer
    it pools) takes the canvas of the layer before it rather than the largest."""
    canvases: dict[int, tuple[int, int]] = {}
    previous = None
    for info in sorted(layers, key=lambda layer: layer.index):
        if info.receptive_field is None and previous is not None and free_size and settings.fixed_canvas is None:
            canvases[info.index] = previous
        else:
            canvases[info.index] = previous = plan_canvas(info, input_hw, free_size, settings)
    return canvases


def plan_batch(cost: LayerCost, canvas_hw: tuple[int, int], filters: int, settings: AscentSettings) -> int:
    """As many canvases as fit the memory budget and keep one step near STEP_SECONDS."""
    if settings.batch_size is not None:
        return max(1, min(filters, settings.batch_size))
    pixels = canvas_hw[0] * canvas_hw[1]
    if settings.device_memory:  # a GPU: a quarter of its memory, and its arithmetic rate
        budget = settings.memory_budget or settings.device_memory // 4
        rate = ASSUMED_ACCELERATOR_GFLOPS
    else:
        budget = settings.memory_budget or min(4 << 30, _physical_memory() // 6)
        rate = ASSUMED_GFLOPS
    by_memory = budget // max(1.0, cost.bytes_per_pixel * pixels)
    by_time = STEP_SECONDS * rate * 1e9 / max(1.0, cost.step_flops(canvas_hw))
    return int(max(1, min(filters, by_memory, by_time)))


def activation_border(size: int) -> int:
    """Positions of the activation map left out of the loss at each edge (keras.io leaves 2)."""
    return 2 if size >= 12 else (1 if size >= 6 else 0)


# --------------------------------------------------------------------------- the engine


def pre_activation_rescue(output_means, pre_means, one_hot, floor: np.ndarray):
    """A model modifier, like tf-keras-vis's ``ReplaceToLinear`` but only where it is needed: a
    canvas whose response sits at its floor (zero gradient) climbs the input of the last
    saturating step instead, until the response moves; the others climb their response."""
    from keras import ops

    floor = ops.einsum("bc,c->b", one_hot, ops.convert_to_tensor(floor, "float32"))
    off_floor = ops.abs(output_means - floor) > 1e-6 * (1.0 + ops.abs(floor))
    return output_means + ops.where(off_floor, ops.zeros_like(output_means), pre_means)



@dataclass(frozen=True)
class _Member:
    """One layer of a group: how its value becomes the unit's response, and the response's floor."""

    info: LayerInfo
    before: list  # functions from the value to what the rescue climbs
    after: list  # functions from there to the unit's response
    floor: np.ndarray | None
    channels_first: bool


def _member(model, info: LayerInfo, conv_activation) -> _Member:
    """What is climbed: the unit's response (the conv, its own activation, then
    ``info.unit_layers``); while a filter sits at the response's floor, the input of the last
    saturating step."""
    functions = unit_functions(model, info)
    filters = info.filters or 0
    channels_first = info.data_format == "channels_first"
    floor = response_floor(functions, filters, channels_first) if functions else None
    if conv_activation is None and getattr(resolve_layer(model, info), "activation", None) is not None:
        functions = functions[1:]  # the value already went through the conv's activation
    split = rescue_split(functions, filters, channels_first) if functions else None
    before = functions[:split] if split is not None else functions
    after = functions[split:] if split is not None else []
    return _Member(info, before, after, floor, channels_first)


class AscentGroup:
    """Layers that share one compiled step: one model from the canvas to each member's value.

    Tracing a step replays the Keras graph up to the layer in Python and gives TensorFlow a new
    graph to set up, about 3 s for a layer 200 deep, more than the climb itself when the steps are
    few. A group is traced once per canvas size for all its members: a batch climbs one member's
    filters through that member's one-hot mask, the others get zero masks (their outputs cost
    arithmetic, not a trace, and add exact zeros, so a layer's pictures do not depend on its group).
    """

    def __init__(self, members: list[_Member], forward_values: Callable, layers: list, free: bool, cost: LayerCost,
                 preprocess, input_channels_first: bool, settings: AscentSettings, channels: int,
                 climbing_values: Callable | None = None):
        """``forward_values(model input)`` gives each member's value; ``climbing_values`` the
        same for the steps, where they compute in another precision; ``layers`` are the Keras
        models they call (whether they compile, whether they need XLA); ``free``: any canvas size."""
        self.members, self.free, self.cost, self.settings, self.channels = members, free, cost, settings, channels
        self._forward_values, self._preprocess = forward_values, preprocess
        self._climbing_values = climbing_values or forward_values
        self.two_precisions = climbing_values is not None and climbing_values is not forward_values
        self._input_channels_first = input_channels_first
        xla = reads_channels_first(layers) or None  # TF's CPU kernels run NCHW convs only under XLA
        self.compiles = graph_safe(layers)
        self._compile = lambda f, fixed_shapes=True: compile_function(f, self.compiles, xla, fixed_shapes)
        self._compiled: dict = {}  # canvas (h, w) -> (recipe, step, measure, measure_seen)
        self.traced: set = set()  # (canvas (h, w), batch size) the step has been traced for

    def position(self, info: LayerInfo) -> int:
        return next(i for i, member in enumerate(self.members) if member.info.index == info.index)

    def compiled(self, canvas_hw: tuple[int, int]):
        """(recipe, step, measure, measure_seen) for canvases of ``canvas_hw``, made once: the
        step (forward and gradient), the measurement of the response (forward only, float32) and
        of the transformed views (the same function, unless the steps compute in bfloat16: then
        the steps' model, forward only)."""
        if canvas_hw not in self._compiled:
            settings = self.settings
            name = recipe_name(settings.mode, canvas_hw)
            rate = settings.rate if name == settings.mode else \
                small_canvas_rate(settings.step_count) if settings.mode == "balanced" else MODE_RATES[name]
            parts = recipe(name, canvas_hw, self.channels, rate, settings.noise_amplitude, settings.betas)
            # lucid's random scale gives each step's transformed canvas its own shape
            step = self._compile(lambda params, state, t, one_hots, draw: self._climb_step(parts, params, state, t,
                                                                                           one_hots, draw),
                                 fixed_shapes=not isinstance(parts.transforms, LucidTransforms))
            measure = self._compile(without_gradients(lambda pixels, one_hots: self._objective(pixels, one_hots)[1]))
            measure_seen = measure if not self.two_precisions else self._compile(without_gradients(
                lambda pixels, one_hots: self._objective(pixels, one_hots, climbing=True)[1]))
            self._compiled[canvas_hw] = (parts, step, measure, measure_seen)
        return self._compiled[canvas_hw]

    # -- the objective ---------------------------------------------------------------

    def _responses(self, pixels, forward_values):
        """Per member, (what the rescue climbs, the unit's response), float32 and channels last."""
        from keras import ops

        x = self._preprocess(pixels)
        if self._input_channels_first:
            x = ops.transpose(x, (0, 3, 1, 2))
        for member, value in zip(self.members, forward_values(x)):
            for function in member.before:
                value = function(value)
            output = value
            for function in member.after:
                output = function(output)
            # float16/bfloat16 layers (mixed precision): the objective is summed in float32
            value, output = ops.cast(value, "float32"), ops.cast(output, "float32")
            if member.channels_first:
                value, output = ops.transpose(value, (0, 2, 3, 1)), ops.transpose(output, (0, 2, 3, 1))
            yield member, value, output

    def _objective(self, pixels, one_hots, climbing: bool = False):
        """(what is climbed, the unit's real mean response) per canvas, summed over the members
        (only the climbing member's mask is non-zero); ``climbing``: through the steps' replay."""
        climbed_total, output_total = 0.0, 0.0
        forward_values = self._climbing_values if climbing else self._forward_values
        for (member, pre, output), one_hot in zip(self._responses(pixels, forward_values), one_hots):
            output_means = _filter_means(output, one_hot)
            climbed = output_means
            if member.after and member.floor is not None and self.settings.rescue_stuck:
                climbed = pre_activation_rescue(output_means, _filter_means(pre, one_hot), one_hot, member.floor)
            climbed_total, output_total = climbed_total + climbed, output_total + output_means
        return climbed_total, output_total

    def _climb_step(self, parts, params, state, t, one_hots, draw):
        """One step of the recipe: its image seen through its transforms, its optimiser's update."""

        def climbed(params):
            return self._objective(parts.transforms.apply(parts.image.pixels(params), draw), one_hots, climbing=True)[0]

        _, (gradient,) = with_gradients(climbed)(params)
        return parts.optimiser.step(params, gradient, state, t)


# Each step is a forward and an input-gradient pass (~3 forwards); the measurement is a forward on
# the final canvas and one under each of the quality measure's transforms.
MEASURE_STEPS = (1 + MEASURE_DRAWS) / 3.0


def _filter_means(values, one_hot):
    from keras import ops

    border = activation_border(int(values.shape[1]) if values.shape[1] is not None else 0)
    if border:
        values = values[:, border:-border, border:-border, :]
    shape = ops.shape(values)
    area = ops.cast(shape[1] * shape[2], "float32")
    # One filter per canvas: the mean over space of that canvas's own filter.
    return ops.einsum("bhwc,bc->b", values, one_hot) / area


# Tracing and setting up a compiled step costs about 0.035 s per Keras layer it replays, whatever
# the canvas, and its forward-only measurement about half that: in a 200-layer model, seconds that
# FLOPs do not show (benchmarks/deep_models.py).
TRACE_COST_PER_LAYER = 1.5 * 2.5e9  # FLOP-equivalents (progress.DRAWING_COST, 5e9, is ~0.05 s here)
# Groups: consecutive layers whose upstream cost per pixel stays within GROUP_COST_RATIO of the
# first's, and whose ascents are short (at most GROUP_WORK canvas-steps, filters x steps). A longer
# ascent pays for its own trace: in a group, each member's step also runs the group's deeper layers
# and every member's objective (11 members of ResNet50V2 made a step 37 % dearer than alone), while
# a deep trace is worth a few hundred canvas-steps. Larger groups, chosen by a cost model of both,
# were slower here (ResNet50V2, one step of 8 filters a layer: 82 s against 72 s, benchmarks/).
GROUP_COST_RATIO = 1.25
GROUP_WORK = 1000


def upstream_cost(conv_layers: list[LayerInfo], info: LayerInfo, input_hw: tuple[int, int]) -> LayerCost:
    """What one canvas pixel costs up to ``info``: the conv layers up to it in walk order."""
    return LayerCost.of([layer for layer in conv_layers if layer.index <= info.index], input_hw)


def trace_cost(info: LayerInfo) -> float:
    """FLOP-equivalents of tracing a step whose graph reaches ``info`` (walk position ~ layers)."""
    return TRACE_COST_PER_LAYER * (info.index + 1)


def plan_groups(conv_layers: list[LayerInfo], targets: list[LayerInfo], input_hw: tuple[int, int],
                canvases: dict[int, tuple[int, int]], work: dict[int, float] | None = None) -> list[list[LayerInfo]]:
    """Consecutive short targets (walk order; at most GROUP_WORK canvas-steps of ``work``, all of
    them without it) on canvases of one size, whose upstream cost per pixel stays within
    GROUP_COST_RATIO of the first's, share one trace; a long target is a group of its own."""
    groups: list[list[LayerInfo]] = []
    first_cost, joinable = 0.0, False
    for info in sorted(targets, key=lambda layer: layer.index):
        cost = upstream_cost(conv_layers, info, input_hw).flops_per_pixel
        short = work is None or work.get(info.index, 0) <= GROUP_WORK
        if groups and short and joinable and cost <= GROUP_COST_RATIO * first_cost \
                and canvases[info.index] == canvases[groups[-1][0].index]:
            groups[-1].append(info)
        else:
            groups.append([info])
            first_cost, joinable = max(cost, 1.0), short
    return groups


class AscentTrunk:
    """Every conv layer's ascent for one model: one replay of the graph at a free input size,
    and the groups of layers that share a compiled step (``AscentGroup``). A layer the replay
    cannot reach is climbed alone, through a chain of models at the model's own input size."""

    def __init__(self, model, conv_layers: list[LayerInfo], input_hw: tuple[int, int], channels: int, preprocess,
                 settings: AscentSettings = AscentSettings(), input_channels_first: bool = False,
                 targets: list[LayerInfo] | None = None, work: dict[int, float] | None = None):
        """``conv_layers``: every conv layer of the model (what a layer's step pays for);
        ``targets``: the layers to climb (default: all of ``conv_layers``); ``work``: the
        canvas-steps each will climb, which decides who shares a trace (``plan_groups``)."""
        import keras

        if settings.mode not in ASCENT_MODES:
            raise ValueError(f"ascent mode must be one of {ASCENT_MODES}, got {settings.mode!r}")
        self.model, self.input_hw, self.channels, self.settings = model, input_hw, channels, settings
        self._preprocess, self._input_channels_first = preprocess, input_channels_first
        self._conv_layers = sorted(conv_layers, key=lambda layer: layer.index)
        targets = self._conv_layers if targets is None else targets
        new_input, values = free_size_values(model, targets, input_channels_first)
        self._canvases = plan_canvases(targets, input_hw, True, settings)
        self._groups: dict[int, AscentGroup] = {}
        self._engines: dict[int, LayerAscent] = {}
        self._engines_lock = threading.Lock()  # the trace-ahead thread makes engines too
        self._tracer: tuple[threading.Thread, threading.Event] | None = None
        reached = [info for info in targets if info.index in values]
        bfloat16_replay = None
        for infos in plan_groups(self._conv_layers, reached, input_hw, self._canvases, work):
            multi = keras.Model(new_input, [values[info.index][0] for info in infos])
            climber = multi
            if climbing_precision(settings, self._cost(infos[-1])) == "bfloat16":
                bfloat16_replay = bfloat16_replay or free_size_values(model, targets, input_channels_first, "bfloat16")
                twin_input, twin_values = bfloat16_replay
                if all(info.index in twin_values for info in infos):
                    climber = keras.Model(twin_input, [twin_values[info.index][0] for info in infos])
            members = [_member(model, info, values[info.index][1]) for info in infos]
            group = AscentGroup(members, _as_list(multi), [multi, climber], True, self._cost(infos[-1]), preprocess,
                                input_channels_first, settings, channels,
                                _as_list(climber) if climber is not multi else None)
            self._groups.update((info.index, group) for info in infos)

    def _cost(self, info: LayerInfo) -> LayerCost:
        return upstream_cost(self._conv_layers, info, self.input_hw)

    def engine(self, info: LayerInfo) -> "LayerAscent":
        """The layer's engine, made once (each batch of a layer, a unit of work, asks for it)."""
        with self._engines_lock:
            if info.index not in self._engines:
                self._engines[info.index] = self._make_engine(info)
            return self._engines[info.index]

    def trace_ahead(self, plan: list[tuple[LayerInfo, int]]) -> None:
        """Trace each group's step and measurement for the batches ``plan`` names ((layer, batch
        size), in the order the layers will climb) in a background thread, while this one climbs.

        Tracing is Python on one core; a batch's arithmetic runs in TensorFlow's threads without
        the GIL. Traced in turn, ResNet50V2's 15 groups left a core idle for 20 s of a one-step
        build. A function being traced holds its lock, so a climb that reaches it waits for the
        trace instead of tracing again. An error is left for the climb itself to meet and report."""
        self.stop_tracing()
        stop = threading.Event()

        def run() -> None:
            for info, batch_size in plan:
                if stop.is_set():
                    return
                try:
                    self.engine(info).prepare(batch_size)
                except Exception:
                    return

        thread = threading.Thread(target=run, name="cnnviz-trace-ahead", daemon=True)
        self._tracer = (thread, stop)
        thread.start()

    def stop_tracing(self) -> None:
        """Stop tracing ahead, after the trace under way (so no thread is inside TensorFlow when
        the build ends or is interrupted)."""
        if self._tracer is not None:
            thread, stop = self._tracer
            stop.set()
            thread.join()
            self._tracer = None

    def _make_engine(self, info: LayerInfo) -> "LayerAscent":
        group = self._groups.get(info.index)
        if group is None:  # a graph that cannot be replayed at a free size: the model's own input size
            chain, conv_activation = ascent_chain(self.model, info)
            group = AscentGroup([_member(self.model, info, conv_activation)], _through(chain), chain, False,
                                self._cost(info), self._preprocess, self._input_channels_first, self.settings,
                                self.channels)
            return LayerAscent(group, info, plan_canvas(info, self.input_hw, False, self.settings))
        return LayerAscent(group, info, self._canvases[info.index])


def _as_list(model) -> Callable:
    def forward(x):
        outputs = model(x, training=False)
        return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    return forward


def _through(chain: list) -> Callable:
    def forward(x):
        for stage in chain:
            x = stage(x, training=False)
        return [x]
    return forward


class LayerAscent:
    """One layer's filters climbed in batches, through its group's compiled step."""

    def __init__(self, group: AscentGroup, info: LayerInfo, canvas_hw: tuple[int, int]):
        self.group, self.info, self.settings = group, info, group.settings
        self._position = group.position(info)
        member = group.members[self._position]
        self.floor, self._after = member.floor, member.after
        self.canvas_hw = canvas_hw
        self.cost = group.cost
        self.flops_per_canvas_step = self.cost.step_flops(self.canvas_hw)
        self.recipe, self._step, self._measure, self._measure_seen = group.compiled(self.canvas_hw)
        self._matrices = measurement_matrices(self.canvas_hw)

    @classmethod
    def alone(cls, model, info: LayerInfo, upstream: list[LayerInfo], input_hw: tuple[int, int], channels: int,
              preprocess, settings: AscentSettings = AscentSettings(), input_channels_first: bool = False):
        """The engine of one layer in a group of its own (``upstream``: the conv layers it pays for)."""
        return AscentTrunk(model, upstream, input_hw, channels, preprocess, settings, input_channels_first,
                           targets=[info]).engine(info)

    def _one_hots(self, chunk: list[int]):
        """The climbing member's one-hot mask of ``chunk``, zeros for the group's other members."""
        from keras import ops

        masks = []
        for position, member in enumerate(self.group.members):
            mask = np.zeros((len(chunk), member.info.filters or 0), np.float32)
            if position == self._position:  # an index past the member's filters: an all-zero row
                rows = [row for row, index in enumerate(chunk) if 0 <= index < mask.shape[1]]
                mask[rows, [chunk[row] for row in rows]] = 1.0
            masks.append(ops.convert_to_tensor(mask))
        return tuple(masks)

    def batch_size(self, filters: int) -> int:
        """At most the group's batch for this canvas, spread evenly over the batches ``filters``
        need, so filling up the last one wastes fewer canvases than there are batches (64 filters
        in batches of at most 39 climb as 2 x 32, not 39 + 25 filled up to 39)."""
        largest = min(max(1, filters), plan_batch(self.cost, self.canvas_hw, 1 << 30, self.settings))
        batches = -(-max(1, filters) // largest)
        return -(-max(1, filters) // batches)

    def _climb(self, chunk: list[int], steps: int):
        """(the final pixels, the unit's mean response to them as they are, and its mean over the
        quality measure's transforms) of one batch of canvases, one filter each.

        Its randomness depends on nothing but the seed, the layer and the filters: each filter's
        start comes from its own generator, and every batch sees the same transforms. So a batch
        is a unit of work of its own (another process, another machine) and a filter starts
        from the same canvas whatever else is drawn."""
        from keras import ops

        params, state, one_hots = self._start(chunk)
        rng = np.random.default_rng([self.settings.seed, self.info.index, 1])  # the transforms
        if self.group.compiles:
            self.group.traced.add((self.canvas_hw, len(chunk)))
        for t in range(1, steps + 1):
            draw = self.recipe.transforms.draw(rng)
            params, state = self._step(params, state, ops.convert_to_tensor(float(t), "float32"), one_hots,
                                       None if draw is None else ops.convert_to_tensor(draw))
        pixels = self.recipe.image.pixels(params)
        return (pixels, *self._measured(pixels, one_hots))

    def _start(self, chunk: list[int]):
        """(params, optimiser state, one-hot masks) of a batch: each filter's start from its own
        generator, so it does not depend on the rest of the batch."""
        from keras import ops

        seed, layer = self.settings.seed, self.info.index
        params = ops.convert_to_tensor(np.concatenate(
            [self.recipe.image.initial(np.random.default_rng([seed, layer, 0, number]), 1) for number in chunk]))
        return params, self.recipe.optimiser.start(params), self._one_hots(chunk)

    def prepare(self, batch_size: int) -> None:
        """Trace the step and the measurement for batches of ``batch_size`` on this canvas,
        without running them (``AscentTrunk.trace_ahead``; on PyTorch, eager, there is nothing to
        trace)."""
        from keras import ops

        if not self.group.compiles or (self.canvas_hw, batch_size) in self.group.traced:
            return
        self.group.traced.add((self.canvas_hw, batch_size))
        params, state, one_hots = self._start([0] * batch_size)
        draw = self.recipe.transforms.draw(np.random.default_rng(0))
        trace(self._step, params, state, ops.convert_to_tensor(1.0, "float32"), one_hots,
              None if draw is None else ops.convert_to_tensor(draw))
        trace(self._measure, self.recipe.image.pixels(params), one_hots)
        if self._measure_seen is not self._measure:
            trace(self._measure_seen, self.recipe.image.pixels(params), one_hots)

    def _measured(self, pixels, one_hots) -> tuple[np.ndarray, np.ndarray]:
        """(the response to ``pixels``, in float32: the numbers verdicts rest on; its mean under
        the quality measure's transforms, a picture's robustness, in the steps' precision:
        in float32 these four passes took a third of a bfloat16 layer's time)."""
        from keras import ops

        response = ops.convert_to_numpy(self._measure(pixels, one_hots))
        transformed = np.mean([ops.convert_to_numpy(self._measure_seen(resample(pixels, matrix), one_hots))
                               for matrix in self._matrices], axis=0)
        return response, transformed

    def measure(self, pixels: np.ndarray, filter_indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(the unit's mean response to each canvas of ``pixels`` (F, h, w, C; 0..255), and its
        mean under the quality measure's transforms), canvas i for filter ``filter_indices[i]``."""
        from keras import ops

        return self._measured(ops.convert_to_tensor(pixels, "float32"), self._one_hots(list(filter_indices)))

    def traced_batch_size(self, canvases: int, steps: int) -> int | None:
        """The smallest batch size above ``canvases`` the group's step is already traced for on
        this canvas, when filling a batch up to it costs less arithmetic than tracing the step
        for a batch of its own; None when there is none, or ``canvases`` is traced itself.

        A member with fewer filters than its group's batch (a squeeze-and-excitation conv), or
        a few deciding units climbed after the mosaic, would otherwise pay a trace of the whole
        group for seconds."""
        sizes = sorted(size for canvas, size in self.group.traced if canvas == self.canvas_hw)
        if canvases in sizes:
            return None
        size = next((size for size in sizes if size > canvases), None)
        if size is None:
            return None
        waste = (size - canvases) * (steps + MEASURE_STEPS) * self.flops_per_canvas_step
        return size if waste < trace_cost(self.group.members[-1].info) else None

    def batches(self, filter_indices: list[int]) -> list[tuple[int, ...]]:
        """``filter_indices`` in batches of one size, the last filled up with repeats of its last
        filter (so the step is traced once): the units of work a layer's ascent is made of."""
        batch_size = self.batch_size(len(filter_indices))
        batches = []
        for start in range(0, len(filter_indices), batch_size):
            chunk = list(filter_indices[start : start + batch_size])
            batches.append(tuple(chunk + [chunk[-1]] * (batch_size - len(chunk))))
        return batches

    def climb_batch(self, padded: tuple[int, ...], count: int, steps: int | None = None) -> BatchResult:
        """The first ``count`` filters' results of one batch from ``batches`` (the rest are its
        padding): the same pictures in any process, whatever other batch ran before."""
        from keras import ops

        steps = self.settings.step_count if steps is None else steps
        traced = self.traced_batch_size(len(padded), steps)
        if traced is not None:  # a filter's picture does not depend on its batch
            padded = tuple(padded) + (padded[-1],) * (traced - len(padded))
        final, responses, seen = self._climb(list(padded), steps)
        images = np.stack([self.recipe.display(picture) for picture in ops.convert_to_numpy(final)[:count]])
        return BatchResult(tuple(padded[:count]), images, np.asarray(responses[:count], np.float32),
                           np.asarray(seen[:count], np.float32),
                           np.array([high_frequency_share(image) for image in images], np.float32))

    def run(self, filter_indices: list[int], steps: int | None = None,
            on_batch: Callable[[int, int], None] | None = None) -> AscentResult:
        """Climb each filter of ``filter_indices``, batch by batch (``batches``); Ctrl-C lands
        between steps. ``on_batch(done, total)`` hears after each batch how many filters are done."""
        steps = self.settings.step_count if steps is None else steps
        batches = self.batches(list(filter_indices))
        results, done = [], 0
        for padded in batches:
            count = min(len(padded), len(filter_indices) - done)
            results.append(self.climb_batch(padded, count, steps))
            done += count
            if on_batch is not None:
                on_batch(done, len(filter_indices))
        flops = len(batches) * len(batches[0]) * (steps + MEASURE_STEPS) * self.flops_per_canvas_step
        joined = BatchResult.join(results)
        return AscentResult(tuple(filter_indices), joined.images, joined.activations, joined.transformed,
                            joined.high_frequency, self.canvas_hw, len(batches[0]), flops)


def maximise_filters(model, info: LayerInfo, filter_indices: list[int], canvas_hw: tuple[int, int],
                     channels: int, preprocess, settings: AscentSettings = AscentSettings(),
                     input_channels_first: bool = False) -> AscentResult:
    """One layer's ascent on a canvas of the caller's size (the seeds' geometry, for comparison).

    The builder uses LayerAscent, which sizes the canvas and the batches itself.
    """
    from dataclasses import replace

    fixed = replace(settings, fixed_canvas=canvas_hw)
    engine = LayerAscent.alone(model, info, [info], canvas_hw, channels, preprocess, fixed, input_channels_first)
    return engine.run(filter_indices)
