"""Activation maximisation: the input image each filter likes most (Erhan 2009; keras.io).

The method is the seeds' (keras.io "Visualizing what convnets learn"): start from grey noise,
ascend the mean activation of one filter with l2-normalised gradients, leave a border out of the
loss, then deprocess. Three things differ on purpose:

* filters are optimised together, one canvas per filter in a batch, through a model truncated
  at the layer (the same result as one at a time, a fraction of the calls);
* the canvas lives in pixel space (0..255 RGB) and the model's own preprocessing is applied
  inside the gradient, so the step size means the same for every model and colours come out
  in RGB even for caffe-style (BGR) models;
* a filter that is off everywhere (its ReLU output is zero, so is its gradient) climbs its
  pre-activation value (lucid's ``_pre_relu``) until it turns on, then its real output. From
  grey noise many ReLU filters start that way and would otherwise stay noise. The number on
  each tile is always the layer's real output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..inspection import LayerInfo
from .activations import ascent_chain, layer_chain

# keras.io: lr 10 on a 180x180x3 canvas scaled to [-1, 1] is an RMS step of this many pixel levels
_KERAS_IO_PIXELS = 180 * 180 * 3
_PIXEL_LEVELS_PER_UNIT = 127.5


@dataclass(frozen=True)
class AscentSettings:
    steps: int = 30
    learning_rate: float = 10.0  # on the keras.io scale (see module docstring)
    batch_size: int = 16
    noise_amplitude: float = 10.0  # grey 128 +- this many pixel levels, as the seeds start
    crop_fraction: float = 25 / 180  # keras.io crops 25 px of a 180 px canvas for display
    seed: int = 0
    rescue_stuck: bool = True  # climb the pre-activation of filters that are off everywhere


@dataclass(frozen=True)
class AscentResult:
    filter_indices: tuple[int, ...]
    images: np.ndarray  # uint8 (F, h, w, C), deprocessed and border-cropped
    activations: np.ndarray  # float32 (F,), mean layer output (border excluded) on the final canvas


def _activation_border(size: int) -> int:
    """Pixels of the activation map left out of the loss at each edge (keras.io leaves 2)."""
    return 2 if size >= 12 else (1 if size >= 6 else 0)


def deprocess(canvas: np.ndarray, crop: int) -> np.ndarray:
    """keras.io's deprocess_image: standardise, scale to 0.15 std around grey, crop, to uint8."""
    image = canvas.astype(np.float64)
    image = image - image.mean()
    image = image / (image.std() + 1e-5) * 0.15 + 0.5
    if crop > 0 and image.shape[0] > 2 * crop and image.shape[1] > 2 * crop:
        image = image[crop:-crop, crop:-crop]
    return (np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8)


# TensorFlow graph mode only accepts these characters in name scopes, and Keras opens one per
# layer; layer names are user data and may hold anything else.
_SCOPE_NAME = re.compile(r"[A-Za-z0-9_.\\/>-]*")


def _graph_safe(chain) -> bool:
    """True when every layer the chain calls has a name TensorFlow accepts as a scope."""
    def names(layer):
        yield layer.name
        for inner in getattr(layer, "layers", ()):
            yield from names(inner)

    return all(_SCOPE_NAME.fullmatch(name) for link in chain for name in names(link))


def _make_step(chain, activation, preprocess, input_channels_first: bool, output_channels_first: bool,
               step_norm: float):
    """The ascent step and the measurement of each filter's mean output.

    Both are compiled with tf.function unless a layer name would break graph mode; then they
    run eagerly, slower but correct.
    """
    import tensorflow as tf

    compiled = _graph_safe(chain)

    def compile_if_safe(function):
        return tf.function(function, reduce_retracing=True) if compiled else function

    def forward(canvas):
        """(pre-activation, output) of the layer, channels last."""
        x = preprocess(canvas)
        if input_channels_first:
            x = tf.transpose(x, (0, 3, 1, 2))
        for stage in chain:
            x = stage(x, training=False)
        output = activation(x) if activation is not None else x
        if output_channels_first:
            x, output = tf.transpose(x, (0, 2, 3, 1)), tf.transpose(output, (0, 2, 3, 1))
        return x, output

    def filter_means(values, one_hot):
        border = _activation_border(int(values.shape[1]))
        if border:
            values = values[:, border:-border, border:-border, :]
        # One filter per canvas: the mean over space of that canvas's own filter.
        return tf.einsum("bhwc,bc->b", values, one_hot) / float(values.shape[1] * values.shape[2])

    def objective(canvas, one_hot):
        pre, output = forward(canvas)
        output_means = filter_means(output, one_hot)
        if activation is None:
            return output_means, output_means
        # A filter that is off everywhere gets no gradient through its ReLU: climb its
        # pre-activation until it turns on, then its real output.
        stuck = tf.where(output_means > 0, tf.zeros_like(output_means), filter_means(pre, one_hot))
        return output_means + stuck, output_means

    @compile_if_safe
    def step(canvas, one_hot):
        with tf.GradientTape() as tape:
            tape.watch(canvas)
            loss = tf.reduce_sum(objective(canvas, one_hot)[0])
        grads = tape.gradient(loss, canvas)
        grads = tf.math.l2_normalize(grads, axis=[1, 2, 3])
        return canvas + step_norm * grads

    @compile_if_safe
    def measure(canvas, one_hot):
        return objective(canvas, one_hot)[1]

    return step, measure


def maximise_filters(
    model,
    info: LayerInfo,
    filter_indices: list[int],
    canvas_hw: tuple[int, int],
    channels: int,
    preprocess,
    settings: AscentSettings = AscentSettings(),
    input_channels_first: bool = False,
) -> AscentResult:
    """Gradient ascent on each filter of ``filter_indices`` of layer ``info``, in batches."""
    import tensorflow as tf

    height, width = canvas_hw
    pixels = height * width * channels
    step_norm = settings.learning_rate * _PIXEL_LEVELS_PER_UNIT * float(np.sqrt(pixels / _KERAS_IO_PIXELS))
    chain, activation = ascent_chain(model, info) if settings.rescue_stuck else (layer_chain(model, info), None)
    step, measure = _make_step(
        chain, activation, preprocess, input_channels_first, info.data_format == "channels_first", step_norm
    )
    rng = np.random.default_rng([settings.seed, info.index])
    crop = int(round(min(height, width) * settings.crop_fraction))
    images, activations = [], []
    for start in range(0, len(filter_indices), settings.batch_size):
        chunk = filter_indices[start : start + settings.batch_size]
        noise = rng.uniform(-1.0, 1.0, size=(len(chunk), height, width, channels))
        canvas = tf.constant(128.0 + settings.noise_amplitude * noise, dtype=tf.float32)
        one_hot = tf.one_hot(chunk, depth=info.filters, dtype=tf.float32)
        for _ in range(settings.steps):
            canvas = step(canvas, one_hot)
        activations.append(measure(canvas, one_hot).numpy())
        images.extend(deprocess(c, crop) for c in canvas.numpy())
    return AscentResult(
        filter_indices=tuple(filter_indices),
        images=np.stack(images),
        activations=np.concatenate(activations).astype(np.float32),
    )
