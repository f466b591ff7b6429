"""Activation maximisation: the input image each filter likes most (Erhan 2009; keras.io; lucid).

Two modes share one engine:

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

import numpy as np

from ..inspection import LayerInfo, resolve_layer
from ..render import NONFINITE_RGB
from .activations import ascent_chain, free_size_model, graph_safe, reads_channels_first

MODES = ("fast", "robust")
# keras.io: lr 10 on a 180x180x3 canvas scaled to [-1, 1] is an RMS step of this many pixel levels
_KERAS_IO_PIXELS = 180 * 180 * 3
_PIXEL_LEVELS_PER_UNIT = 127.5
ASSUMED_GFLOPS = 150.0  # a CPU rate to bound the time of one step (this 2-core AVX-512 machine: 190-590)
STEP_SECONDS = 2.0
# lucid's colour decorrelation: the square root of ImageNet's colour correlation (SVD)
_COLOR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)
_COLOR_SQRT_NORMALISED = _COLOR_SQRT / np.max(np.linalg.norm(_COLOR_SQRT, axis=0))


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


def _nonfinite_tile(canvas: np.ndarray, crop: int) -> np.ndarray:
    """A canvas that went NaN/Inf (a NaN weight upstream) is drawn magenta, never cast."""
    height, width, channels = canvas.shape
    if crop > 0 and height > 2 * crop and width > 2 * crop:
        height, width = height - 2 * crop, width - 2 * crop
    colour = NONFINITE_RGB if channels == 3 else (255,) * channels
    return np.broadcast_to(np.array(colour, np.uint8), (height, width, channels)).copy()


def deprocess(canvas: np.ndarray, crop: int) -> np.ndarray:
    """keras.io's deprocess_image: standardise, scale to 0.15 std around grey, crop, to uint8."""
    if not np.isfinite(canvas).all():
        return _nonfinite_tile(canvas, crop)
    image = canvas.astype(np.float64)
    image = image - image.mean()
    image = image / (image.std() + 1e-5) * 0.15 + 0.5
    if crop > 0 and image.shape[0] > 2 * crop and image.shape[1] > 2 * crop:
        image = image[crop:-crop, crop:-crop]
    return (np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8)


# --------------------------------------------------------------------------- graph mode


# --------------------------------------------------------------------------- robust mode pieces


def _spectrum_scale(height: int, width: int) -> np.ndarray:
    """lucid's scaling of a real 2-D spectrum: 1/frequency (energy spread evenly over scales),
    times sqrt(h w) so the inverse FFT is unitary and Adam's rate means what it does on pixels."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    frequencies = np.sqrt(fx * fx + fy * fy)
    return (np.sqrt(height * width) / np.maximum(frequencies, 1.0 / max(height, width))).astype(np.float32)


class _Robust:
    """Image parametrisation and transforms of lucid, in TensorFlow, for a batch of canvases."""

    def __init__(self, canvas_hw: tuple[int, int], channels: int):
        import tensorflow as tf

        self.height, self.width = canvas_hw
        self.channels = channels
        self.scale = tf.constant(_spectrum_scale(self.height, self.width)[None, None])  # (1, 1, H, W/2+1)
        self.colour = tf.constant(_COLOR_SQRT_NORMALISED.T) if channels == 3 else None
        unit = max(self.height, self.width) / 128.0  # lucid's numbers are for 128 px images
        self.pad = max(1, int(round(12 * unit)))
        self.jitters = (max(1, int(round(8 * unit))), max(1, int(round(4 * unit))))

    def initial(self, rng: np.random.Generator, batch: int) -> np.ndarray:
        """Small random spectra (lucid: normal, sd 0.01), as (real, imaginary) pairs."""
        shape = (batch, self.channels, self.height, self.width // 2 + 1, 2)
        return rng.normal(0.0, 0.01, size=shape).astype(np.float32)

    def pixels(self, spectrum):
        """Spectra -> (B, H, W, C) pixels in 0..255."""
        import tensorflow as tf

        complex_spectrum = tf.complex(spectrum[..., 0], spectrum[..., 1]) * tf.cast(self.scale, tf.complex64)
        image = tf.signal.irfft2d(complex_spectrum, fft_length=[self.height, self.width]) / 4.0
        image = tf.transpose(image, (0, 2, 3, 1))
        if self.colour is not None:
            image = tf.einsum("bhwc,cd->bhwd", image, self.colour)
        return 255.0 * tf.sigmoid(image)

    def draw_transform(self, rng: np.random.Generator) -> np.ndarray:
        """One random draw of lucid's standard transforms: (dy1, dx1, scale, angle, dy2, dx2)."""
        first, second = self.jitters
        return np.array([
            rng.integers(0, first + 1), rng.integers(0, first + 1),
            rng.choice([1 + (i - 5) / 50.0 for i in range(11)]),
            rng.choice(list(range(-10, 11)) + [0] * 5) * math.pi / 180.0,
            rng.integers(0, second + 1), rng.integers(0, second + 1),
        ], np.float32)

    def transform(self, pixels, draw):
        """pad, jitter, scale, rotate, jitter: lucid's standard_transforms, scaled to the canvas."""
        import tensorflow as tf

        pad = self.pad
        x = tf.pad(pixels, [[0, 0], [pad, pad], [pad, pad], [0, 0]], constant_values=127.5)
        x = self._jitter(x, self.jitters[0], draw[0], draw[1])
        size = tf.cast(tf.shape(x)[1:3], tf.float32)
        x = tf.image.resize(x, tf.cast(tf.round(size * draw[2]), tf.int32), method="bilinear")
        x = self._rotate(x, draw[3])
        return self._jitter(x, self.jitters[1], draw[4], draw[5])

    @staticmethod
    def _jitter(x, amount: int, dy, dx):
        import tensorflow as tf

        size = tf.shape(x)
        dy, dx = tf.cast(dy, tf.int32), tf.cast(dx, tf.int32)
        return x[:, dy : size[1] - amount + dy, dx : size[2] - amount + dx, :]

    @staticmethod
    def _rotate(x, angle):
        import tensorflow as tf

        shape = tf.shape(x)
        height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
        cos, sin = tf.cos(angle), tf.sin(angle)
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        # output (x, y) <- input (a0 x + a1 y + a2, b0 x + b1 y + b2): a rotation about the centre
        transform = tf.stack([cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, 0.0, 0.0])
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=x, transforms=tf.tile(transform[None], [shape[0], 1]), output_shape=shape[1:3],
            interpolation="BILINEAR", fill_mode="REFLECT", fill_value=0.0)


def adam_update(params, grads, m, v, t, rate: float, beta1=0.9, beta2=0.999, epsilon=1e-8):
    """One Adam step (Kingma & Ba 2015) as a pure function: new (params, m, v)."""
    import tensorflow as tf

    m = beta1 * m + (1 - beta1) * grads
    v = beta2 * v + (1 - beta2) * tf.square(grads)
    m_hat = m / (1 - tf.pow(beta1, t))
    v_hat = v / (1 - tf.pow(beta2, t))
    return params - rate * m_hat / (tf.sqrt(v_hat) + epsilon), m, v


# --------------------------------------------------------------------------- the engine


class LayerAscent:
    """Everything needed to visualise the filters of one layer, prepared once, run in batches."""

    def __init__(self, model, info: LayerInfo, upstream: list[LayerInfo], input_hw: tuple[int, int],
                 channels: int, preprocess, settings: AscentSettings = AscentSettings(),
                 input_channels_first: bool = False):
        import tensorflow as tf

        if settings.mode not in MODES:
            raise ValueError(f"ascent mode must be one of {MODES}, got {settings.mode!r}")
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
        self.robust = _Robust(self.canvas_hw, channels) if settings.mode == "robust" else None
        self._preprocess = preprocess
        self._input_channels_first = input_channels_first
        self._output_channels_first = info.data_format == "channels_first"
        compiled = graph_safe(self._chain)
        xla = reads_channels_first(self._chain) or None  # TF's CPU kernels run NCHW convs only under XLA
        self._compile = (lambda f: tf.function(f, reduce_retracing=True, jit_compile=xla)) if compiled else (lambda f: f)
        self._fast_step = self._compile(self._fast)
        self._robust_step = self._compile(self._robust)
        self._measure = self._compile(lambda pixels, one_hot: self._objective(pixels, one_hot)[1])

    # -- the objective ---------------------------------------------------------------

    def _set_unit(self, model, conv_activation) -> None:
        """What is climbed: the unit's response (the conv, its own activation, then
        ``info.unit_layers``); while a filter sits at the response's floor, the input of the last
        saturating step."""
        from ..units import rescue_split, response_floor, unit_functions

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
        """(what is climbed, the layer's real mean output) per canvas."""
        import tensorflow as tf

        pre, output = self._forward(pixels)
        output_means = self._filter_means(output, one_hot)
        if not self._after or self.floor is None or not self.settings.rescue_stuck:
            return output_means, output_means
        floor = tf.einsum("bc,c->b", one_hot, tf.constant(self.floor, tf.float32))
        off_floor = tf.abs(output_means - floor) > 1e-6 * (1.0 + tf.abs(floor))
        stuck = tf.where(off_floor, tf.zeros_like(output_means), self._filter_means(pre, one_hot))
        return output_means + stuck, output_means

    # -- one step of each mode ---------------------------------------------------------

    def _fast(self, canvas, one_hot):
        """keras.io: an l2-normalised gradient step on the pixels."""
        import tensorflow as tf

        values = self.canvas_hw[0] * self.canvas_hw[1] * self.channels
        step_norm = self.settings.rate * _PIXEL_LEVELS_PER_UNIT * float(np.sqrt(values / _KERAS_IO_PIXELS))
        with tf.GradientTape() as tape:
            tape.watch(canvas)
            loss = tf.reduce_sum(self._objective(canvas, one_hot)[0])
        return canvas + step_norm * tf.math.l2_normalize(tape.gradient(loss, canvas), axis=[1, 2, 3])

    def _robust(self, spectrum, m, v, t, one_hot, draw):
        """lucid: an Adam step on the spectrum, the image seen through random transforms."""
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(spectrum)
            seen = self.robust.transform(self.robust.pixels(spectrum), draw)
            loss = -tf.reduce_sum(self._objective(seen, one_hot)[0])
        return adam_update(spectrum, tape.gradient(loss, spectrum), m, v, t, self.settings.rate)

    # -- running -----------------------------------------------------------------------

    def batch_size(self, filters: int) -> int:
        return plan_batch(self.cost, self.canvas_hw, filters, self.settings)

    def _climb(self, chunk: list[int], steps: int, rng: np.random.Generator):
        import tensorflow as tf

        one_hot = tf.one_hot(chunk, depth=self.info.filters, dtype=tf.float32)
        if self.robust is None:
            noise = rng.uniform(-1.0, 1.0, size=(len(chunk), *self.canvas_hw, self.channels))
            canvas = tf.constant(128.0 + self.settings.noise_amplitude * noise, dtype=tf.float32)
            for _ in range(steps):
                canvas = self._fast_step(canvas, one_hot)
            return canvas, one_hot
        spectrum = tf.constant(self.robust.initial(rng, len(chunk)))
        m, v = tf.zeros_like(spectrum), tf.zeros_like(spectrum)
        for t in range(1, steps + 1):
            draw = tf.constant(self.robust.draw_transform(rng))
            spectrum, m, v = self._robust_step(spectrum, m, v, tf.constant(float(t)), one_hot, draw)
        return self.robust.pixels(spectrum), one_hot

    def run(self, filter_indices: list[int], steps: int | None = None) -> AscentResult:
        """Climb each filter of ``filter_indices``, in batches; Ctrl-C lands between steps."""
        steps = self.settings.step_count if steps is None else steps
        batch_size = self.batch_size(len(filter_indices))
        rng = np.random.default_rng([self.settings.seed, self.info.index])
        crop = int(round(min(self.canvas_hw) * 25 / 180)) if self.robust is None else 0
        images, activations = [], []
        for start in range(0, len(filter_indices), batch_size):
            chunk = filter_indices[start : start + batch_size]
            final, one_hot = self._climb(chunk, steps, rng)
            activations.append(np.asarray(self._measure(final, one_hot)))
            pictures = final.numpy()
            if self.robust is None:
                images.extend(deprocess(picture, crop) for picture in pictures)
            else:
                images.extend(np.clip(picture, 0, 255).round().astype(np.uint8) if np.isfinite(picture).all()
                              else _nonfinite_tile(picture, 0) for picture in pictures)
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
