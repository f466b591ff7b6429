"""Activation maximisation: the input image each filter likes most (Erhan 2009; keras.io; lucid).

Two modes share one engine, as two recipes of small parts (``ascent_parts``):

* ``fast`` is the seeds' method (keras.io "Visualizing what convnets learn") done well: start
  from grey noise, climb the mean activation of a filter with l2-normalised gradient steps,
  leave a border out of the loss, standardise for display.
* ``robust`` is the feature-visualisation practice of Olah et al. (Distill 2017) as lucid and
  lucent do it: the image is a Fourier spectrum scaled by 1/frequency with decorrelated colour,
  squashed into valid RGB by a sigmoid, seen through random pad/jitter/scale/rotate transforms,
  and optimised with Adam.

What the engine adds to both:

* many filters at once, one canvas per filter, through a model truncated at the layer (the
  same result as one at a time, a fraction of the calls);
* a canvas sized from the layer's receptive field (a block1 filter sees 3 to 5 pixels and does
  not need 180x180), in a model replayed to accept that size;
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
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..config import ASCENT_MODES
from ..graph import resolve_layer
from ..inspection import LayerInfo
from ..units import rescue_split, response_floor, unit_functions
from .activations import ascent_chain, free_size_model, graph_safe, reads_channels_first
from .ascent_parts import recipe

ASSUMED_GFLOPS = 150.0  # a CPU rate to bound the time of one step (this 2-core AVX-512 machine: 190-590)
STEP_SECONDS = 2.0


@dataclass(frozen=True)
class AscentSettings:
    mode: str = "fast"
    steps: int | None = None  # None: the mode's own (fast 30, robust 128)
    learning_rate: float | None = None  # None: the mode's own (fast 10 on the keras.io scale, robust Adam 0.05)
    seed: int = 0
    rescue_stuck: bool = True
    min_canvas: int = 32
    # 96, not lucid's 128: cost grows with the square of the side, and at the keras.io step size
    # VGG16's block5_conv3 reached a higher mean activation on 96 px than on 128 px canvases
    # (2.33 against 2.12 on 8 filters) for 56 % of the work (see benchmarks/ and the README).
    max_canvas: int = 96
    fixed_canvas: tuple[int, int] | None = None  # force a canvas (the seeds use 180x180)
    memory_budget: int | None = None  # bytes for one batch's activations; None: from free memory
    batch_size: int | None = None  # None: planned from the memory budget and the step time
    noise_amplitude: float = 10.0  # fast: grey 128 +- this many pixel levels, as the seeds start

    @property
    def step_count(self) -> int:
        return self.steps if self.steps is not None else (30 if self.mode == "fast" else 128)

    @property
    def rate(self) -> float:
        return self.learning_rate if self.learning_rate is not None else (10.0 if self.mode == "fast" else 0.05)


@dataclass(frozen=True)
class AscentResult:
    filter_indices: tuple[int, ...]
    images: np.ndarray  # uint8 (F, h, w, C), ready to show
    activations: np.ndarray  # float32 (F,), mean layer output (border excluded) on the final canvas
    canvas_hw: tuple[int, int]
    batch_size: int
    flops: float  # floating-point operations spent (forward and input-gradient passes)


# --------------------------------------------------------------------------- planning


def _available_memory() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 << 30


@dataclass(frozen=True)
class LayerCost:
    """What one input pixel of a canvas costs up to the layer: FLOPs and bytes of activations."""

    flops_per_pixel: float
    bytes_per_pixel: float

    @classmethod
    def of(cls, upstream: list[LayerInfo], input_hw: tuple[int, int]) -> "LayerCost":
        """From the conv layers up to and including the target (their FLOPs at ``input_hw``)."""
        pixels = float(input_hw[0] * input_hw[1])
        flops = sum(layer.flops for layer in upstream) / pixels
        elements = 0.0
        for layer in upstream:
            stride = max(layer.effective_stride or (1,))
            elements += (layer.filters or 0) / float(stride * stride)
        # forward value, pre-activation and gradient of every conv output, float32
        return cls(flops_per_pixel=flops, bytes_per_pixel=3 * 4 * elements)

    def step_flops(self, canvas_hw: tuple[int, int]) -> float:
        """One ascent step on one canvas: a forward and an input-gradient pass."""
        return 2.0 * self.flops_per_pixel * canvas_hw[0] * canvas_hw[1]


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


def plan_batch(cost: LayerCost, canvas_hw: tuple[int, int], filters: int, settings: AscentSettings) -> int:
    """As many canvases as fit the memory budget and keep one step near STEP_SECONDS."""
    if settings.batch_size is not None:
        return max(1, min(filters, settings.batch_size))
    pixels = canvas_hw[0] * canvas_hw[1]
    budget = settings.memory_budget or min(4 << 30, _available_memory() // 4)
    by_memory = budget // max(1.0, cost.bytes_per_pixel * pixels)
    by_time = STEP_SECONDS * ASSUMED_GFLOPS * 1e9 / max(1.0, cost.step_flops(canvas_hw))
    return int(max(1, min(filters, by_memory, by_time)))


def activation_border(size: int) -> int:
    """Positions of the activation map left out of the loss at each edge (keras.io leaves 2)."""
    return 2 if size >= 12 else (1 if size >= 6 else 0)


# --------------------------------------------------------------------------- the engine


def pre_activation_rescue(output_means, pre_means, one_hot, floor: np.ndarray):
    """A model modifier, like tf-keras-vis's ``ReplaceToLinear`` but only where it is needed: a
    canvas whose response sits at its floor (zero gradient) climbs the input of the last
    saturating step instead, until the response moves; the others climb their response."""
    import tensorflow as tf

    floor = tf.einsum("bc,c->b", one_hot, tf.constant(floor, tf.float32))
    off_floor = tf.abs(output_means - floor) > 1e-6 * (1.0 + tf.abs(floor))
    return output_means + tf.where(off_floor, tf.zeros_like(output_means), pre_means)



class LayerAscent:
    """Everything needed to visualise the filters of one layer, prepared once, run in batches."""

    def __init__(self, model, info: LayerInfo, upstream: list[LayerInfo], input_hw: tuple[int, int],
                 channels: int, preprocess, settings: AscentSettings = AscentSettings(),
                 input_channels_first: bool = False):
        import tensorflow as tf

        if settings.mode not in ASCENT_MODES:
            raise ValueError(f"ascent mode must be one of {ASCENT_MODES}, got {settings.mode!r}")
        self.info, self.settings, self.channels = info, settings, channels
        free = free_size_model(model, info, input_channels_first)
        if free is not None:
            self._chain, conv_activation = [free[0]], free[1]
        else:  # a graph that cannot be replayed at a free size: the model's own input size
            self._chain, conv_activation = ascent_chain(model, info)
        self._set_unit(model, conv_activation)
        self.canvas_hw = plan_canvas(info, input_hw, free is not None, settings)
        self.cost = LayerCost.of(upstream, input_hw)
        self.flops_per_canvas_step = self.cost.step_flops(self.canvas_hw)
        self.recipe = recipe(settings.mode, self.canvas_hw, channels, settings.rate, settings.noise_amplitude)
        self._preprocess = preprocess
        self._input_channels_first = input_channels_first
        self._output_channels_first = info.data_format == "channels_first"
        compiled = graph_safe(self._chain)
        xla = reads_channels_first(self._chain) or None  # TF's CPU kernels run NCHW convs only under XLA
        self._compile = (lambda f: tf.function(f, reduce_retracing=True, jit_compile=xla)) if compiled else (lambda f: f)
        self._step = self._compile(self._climb_step)
        self._measure = self._compile(lambda pixels, one_hot: self._objective(pixels, one_hot)[1])

    # -- the objective ---------------------------------------------------------------

    def _set_unit(self, model, conv_activation) -> None:
        """What is climbed: the unit's response (the conv, its own activation, then
        ``info.unit_layers``); while a filter sits at the response's floor, the input of the last
        saturating step."""
        functions = unit_functions(model, self.info)
        filters = self.info.filters or 0
        channels_first = self.info.data_format == "channels_first"
        self.floor = response_floor(functions, filters, channels_first) if functions else None
        if conv_activation is None and getattr(resolve_layer(model, self.info), "activation", None) is not None:
            functions = functions[1:]  # the chain's last link already applied the conv's activation
        split = rescue_split(functions, filters, channels_first) if functions else None
        self._before = functions[:split] if split is not None else functions
        self._after = functions[split:] if split is not None else []

    def _forward(self, pixels):
        """(what the rescue climbs, the unit's response) for (B, H, W, C) pixels, channels last."""
        import tensorflow as tf

        x = self._preprocess(pixels)
        if self._input_channels_first:
            x = tf.transpose(x, (0, 3, 1, 2))
        for stage in self._chain:
            x = stage(x, training=False)
        for function in self._before:
            x = function(x)
        output = x
        for function in self._after:
            output = function(output)
        # float16/bfloat16 layers (mixed precision): the objective is summed in float32
        x, output = tf.cast(x, tf.float32), tf.cast(output, tf.float32)
        if self._output_channels_first:
            x, output = tf.transpose(x, (0, 2, 3, 1)), tf.transpose(output, (0, 2, 3, 1))
        return x, output

    @staticmethod
    def _filter_means(values, one_hot):
        import tensorflow as tf

        border = activation_border(int(values.shape[1]) if values.shape[1] is not None else 0)
        if border:
            values = values[:, border:-border, border:-border, :]
        area = tf.cast(tf.shape(values)[1] * tf.shape(values)[2], tf.float32)
        # One filter per canvas: the mean over space of that canvas's own filter.
        return tf.einsum("bhwc,bc->b", values, one_hot) / area

    def _objective(self, pixels, one_hot):
        """(what is climbed, the unit's real mean response) per canvas."""
        pre, output = self._forward(pixels)
        output_means = self._filter_means(output, one_hot)
        if not self._after or self.floor is None or not self.settings.rescue_stuck:
            return output_means, output_means
        climbed = pre_activation_rescue(output_means, self._filter_means(pre, one_hot), one_hot, self.floor)
        return climbed, output_means

    # -- climbing ----------------------------------------------------------------------

    def _climb_step(self, params, state, t, one_hot, draw):
        """One step of the recipe: its image seen through its transforms, its optimiser's update."""
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(params)
            seen = self.recipe.transforms.apply(self.recipe.image.pixels(params), draw)
            objective = tf.reduce_sum(self._objective(seen, one_hot)[0])
        return self.recipe.optimiser.step(params, tape.gradient(objective, params), state, t)

    def batch_size(self, filters: int) -> int:
        return plan_batch(self.cost, self.canvas_hw, filters, self.settings)

    def _climb(self, chunk: list[int], steps: int, rng: np.random.Generator):
        """The final pixels of one batch of canvases, one filter each."""
        import tensorflow as tf

        one_hot = tf.one_hot(chunk, depth=self.info.filters, dtype=tf.float32)
        params = self.recipe.image.initial(rng, len(chunk))
        state = self.recipe.optimiser.start(params)
        for t in range(1, steps + 1):
            draw = self.recipe.transforms.draw(rng)
            params, state = self._step(params, state, tf.constant(float(t)), one_hot, draw)
        return self.recipe.image.pixels(params), one_hot

    def run(self, filter_indices: list[int], steps: int | None = None,
            on_batch: Callable[[int, int], None] | None = None) -> AscentResult:
        """Climb each filter of ``filter_indices``, in batches; Ctrl-C lands between steps.
        ``on_batch(done, total)`` hears after each batch how many filters are done."""
        steps = self.settings.step_count if steps is None else steps
        batch_size = self.batch_size(len(filter_indices))
        rng = np.random.default_rng([self.settings.seed, self.info.index])
        images, activations = [], []
        for start in range(0, len(filter_indices), batch_size):
            chunk = filter_indices[start : start + batch_size]
            final, one_hot = self._climb(chunk, steps, rng)
            activations.append(np.asarray(self._measure(final, one_hot)))
            images.extend(self.recipe.display(picture) for picture in final.numpy())
            if on_batch is not None:
                on_batch(start + len(chunk), len(filter_indices))
        # each step is a forward and an input-gradient pass; the measurement one more forward
        flops = len(filter_indices) * (steps + 0.5) * self.flops_per_canvas_step
        return AscentResult(tuple(filter_indices), np.stack(images), np.concatenate(activations).astype(np.float32),
                            self.canvas_hw, batch_size, flops)


def maximise_filters(model, info: LayerInfo, filter_indices: list[int], canvas_hw: tuple[int, int],
                     channels: int, preprocess, settings: AscentSettings = AscentSettings(),
                     input_channels_first: bool = False) -> AscentResult:
    """One layer's ascent on a canvas of the caller's size (the seeds' geometry, for comparison).

    The builder uses LayerAscent, which sizes the canvas and the batches itself.
    """
    from dataclasses import replace

    fixed = replace(settings, fixed_canvas=canvas_hw)
    engine = LayerAscent(model, info, [info], canvas_hw, channels, preprocess, fixed, input_channels_first)
    return engine.run(filter_indices)
