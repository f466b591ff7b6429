"""The parts an activation-maximisation recipe is composed of, each with one small interface
(as lucent's ``param.image`` and ``transform.compose``):

* an image parametrisation: ``initial(rng, batch)`` -> parameters, ``pixels(params)`` -> (B, H, W, C)
  pixels in 0..255;
* transforms the image is seen through: ``draw(rng)`` -> this step's random numbers (or None),
  ``apply(pixels, draw)``;
* an optimiser that climbs: ``start(params)`` -> state, ``step(params, gradient, state, t)``;
* a display: the final pixels of one canvas -> a uint8 picture.

``fast``, ``balanced`` and ``robust`` are ``Recipe``s of these parts (``recipe(mode, ...)``), not branches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..render import NONFINITE_RGB
from .framework import affine_resample, irfft2d, resize_bilinear

# keras.io: lr 10 on a 180x180x3 canvas scaled to [-1, 1] is an RMS step of this many pixel levels
_KERAS_IO_PIXELS = 180 * 180 * 3
_PIXEL_LEVELS_PER_UNIT = 127.5
# lucid's colour decorrelation: the square root of ImageNet's colour correlation (SVD)
_COLOR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)
_COLOR_SQRT_NORMALISED = _COLOR_SQRT / np.max(np.linalg.norm(_COLOR_SQRT, axis=0))


# --------------------------------------------------------------------------- image parametrisations


class PixelImage:
    """The canvas is its pixels, starting as grey 128 +- ``noise`` levels (the seeds' start)."""

    def __init__(self, canvas_hw: tuple[int, int], channels: int, noise: float):
        self.canvas_hw, self.channels, self.noise = canvas_hw, channels, noise

    def initial(self, rng: np.random.Generator, batch: int):
        noise = rng.uniform(-1.0, 1.0, size=(batch, *self.canvas_hw, self.channels))
        return (128.0 + self.noise * noise).astype(np.float32)

    def pixels(self, params):
        return params


def _spectrum_scale(height: int, width: int) -> np.ndarray:
    """lucid's scaling of a real 2-D spectrum: 1/frequency (energy spread evenly over scales),
    times sqrt(h w) so the inverse FFT is unitary and Adam's rate means what it does on pixels."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    frequencies = np.sqrt(fx * fx + fy * fy)
    return (np.sqrt(height * width) / np.maximum(frequencies, 1.0 / max(height, width))).astype(np.float32)


class FourierImage:
    """lucid's ``fft_image`` with decorrelated colour, squashed into 0..255 by a sigmoid."""

    def __init__(self, canvas_hw: tuple[int, int], channels: int):
        self.height, self.width = canvas_hw
        self.channels = channels
        self.scale = _spectrum_scale(self.height, self.width)[None, None]  # (1, 1, H, W/2+1)
        self.colour = _COLOR_SQRT_NORMALISED.T if channels == 3 else None

    def initial(self, rng: np.random.Generator, batch: int):
        """Small random spectra (lucid: normal, sd 0.01), as (real, imaginary) pairs."""
        shape = (batch, self.channels, self.height, self.width // 2 + 1, 2)
        return rng.normal(0.0, 0.01, size=shape).astype(np.float32)

    def pixels(self, spectrum):
        from keras import ops

        scale = ops.convert_to_tensor(self.scale)  # real: scaling both parts is the complex product
        image = irfft2d(spectrum[..., 0] * scale, spectrum[..., 1] * scale, (self.height, self.width)) / 4.0
        image = ops.transpose(image, (0, 2, 3, 1))
        if self.colour is not None:
            image = ops.einsum("bhwc,cd->bhwd", image, ops.convert_to_tensor(self.colour))
        return 255.0 * ops.sigmoid(image)


# --------------------------------------------------------------------------- transforms


class NoTransforms:
    def draw(self, rng: np.random.Generator):
        return None

    def apply(self, pixels, draw):
        return pixels


class LucidTransforms:
    """lucid's ``standard_transforms`` (pad, jitter, scale, rotate, jitter), scaled to the canvas."""

    def __init__(self, canvas_hw: tuple[int, int]):
        unit = max(canvas_hw) / 128.0  # lucid's numbers are for 128 px images
        self.pad = max(1, int(round(12 * unit)))
        self.jitters = (max(1, int(round(8 * unit))), max(1, int(round(4 * unit))))

    def draw(self, rng: np.random.Generator):
        """One random draw: (dy1, dx1, scale, angle, dy2, dx2)."""
        first, second = self.jitters
        return np.array([
            rng.integers(0, first + 1), rng.integers(0, first + 1),
            rng.choice([1 + (i - 5) / 50.0 for i in range(11)]),
            rng.choice(list(range(-10, 11)) + [0] * 5) * math.pi / 180.0,
            rng.integers(0, second + 1), rng.integers(0, second + 1),
        ], np.float32)

    def apply(self, pixels, draw):
        from keras import ops

        pad = self.pad
        x = ops.pad(pixels, [[0, 0], [pad, pad], [pad, pad], [0, 0]], constant_values=127.5)
        x = _jitter(x, self.jitters[0], draw[0], draw[1])
        size = ops.cast(ops.convert_to_tensor(ops.shape(x)[1:3]), "float32")
        x = resize_bilinear(x, ops.cast(ops.round(size * draw[2]), "int32"))
        x = _rotate(x, draw[3])
        return _jitter(x, self.jitters[1], draw[4], draw[5])


def affine_matrix(canvas_hw: tuple[int, int], shift: tuple[float, float], scale: float, degrees: float) -> np.ndarray:
    """The 8 numbers of a projective transform that shifts by ``shift`` pixels (dy, dx), scales
    by ``scale`` and rotates by ``degrees`` about the canvas's centre (output -> input pixels)."""
    height, width = canvas_hw
    angle = degrees * math.pi / 180.0
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    return np.array([cos, -sin, cx - cos * cx + sin * cy + shift[1],
                     sin, cos, cy - sin * cx - cos * cy + shift[0], 0.0, 0.0], np.float32)


def resample(pixels, matrix):
    """``pixels`` seen through ``affine_matrix``: one bilinear resample at the canvas's own size,
    with the edges mirrored, so every step sees a canvas of one shape (one trace, one set of kernels)."""
    return affine_resample(pixels, matrix)


class AffineTransforms:
    """lucid's jitter, scale and rotation drawn once per step and applied as one resample at the
    canvas's size: no padding (lucid's pad adds ~40 % pixels to every step) and one shape for all
    steps. Shifts up to 1/16 of the side, scale 0.95-1.05, rotation +-10 degrees."""

    def __init__(self, canvas_hw: tuple[int, int]):
        self.canvas_hw = canvas_hw

    def draw(self, rng: np.random.Generator):
        return random_affine(self.canvas_hw, rng, shift=1 / 16, scale=0.05, degrees=10.0)

    def apply(self, pixels, draw):
        return resample(pixels, draw)


def random_affine(canvas_hw: tuple[int, int], rng: np.random.Generator, shift: float, scale: float,
                  degrees: float) -> np.ndarray:
    """A uniform draw of shifts up to ``shift`` of the side, scale 1 +- ``scale``, +- ``degrees``."""
    side = max(canvas_hw)
    dy, dx = rng.uniform(-shift * side, shift * side, size=2)
    return affine_matrix(canvas_hw, (float(dy), float(dx)), float(rng.uniform(1 - scale, 1 + scale)),
                         float(rng.uniform(-degrees, degrees)))


def _jitter(x, amount: int, dy, dx):
    """A crop ``amount`` smaller on each side at offset (dy, dx): a slice of a fixed size from a
    start that may depend on the inputs."""
    from keras import ops

    _, height, width, channels = ops.shape(x)
    start = ops.stack([0, ops.cast(dy, "int32"), ops.cast(dx, "int32"), 0])
    return ops.slice(x, start, (ops.shape(x)[0], height - amount, width - amount, channels))


def _rotate(x, angle):
    from keras import ops

    shape = ops.shape(x)
    height, width = ops.cast(shape[1], "float32"), ops.cast(shape[2], "float32")
    cos, sin = ops.cos(angle), ops.sin(angle)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    # output (x, y) <- input (a0 x + a1 y + a2, b0 x + b1 y + b2): a rotation about the centre
    zero = ops.zeros_like(cos)
    transform = ops.stack([cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, zero, zero])
    return affine_resample(x, transform)


# --------------------------------------------------------------------------- optimisers (they climb)


class NormalisedGradient:
    """keras.io: a step of fixed RMS size along the l2-normalised gradient."""

    def __init__(self, rate: float, canvas_hw: tuple[int, int], channels: int):
        values = canvas_hw[0] * canvas_hw[1] * channels
        self.step_norm = rate * _PIXEL_LEVELS_PER_UNIT * float(np.sqrt(values / _KERAS_IO_PIXELS))

    def start(self, params):
        return ()

    def step(self, params, gradient, state, t):
        from keras import ops

        return params + self.step_norm * ops.normalize(gradient, axis=(1, 2, 3), order=2), state


def adam_update(params, grads, m, v, t, rate: float, beta1=0.9, beta2=0.999, epsilon=1e-8):
    """One Adam step (Kingma & Ba 2015) as a pure function, climbing: new (params, m, v)."""
    from keras import ops

    m = beta1 * m + (1 - beta1) * grads
    v = beta2 * v + (1 - beta2) * ops.square(grads)
    m_hat = m / (1 - ops.power(beta1, t))
    v_hat = v / (1 - ops.power(beta2, t))
    return params + rate * m_hat / (ops.sqrt(v_hat) + epsilon), m, v


class Adam:
    def __init__(self, rate: float, betas: tuple[float, float] = (0.9, 0.999)):
        self.rate, self.betas = rate, betas

    def start(self, params):
        from keras import ops

        return ops.zeros_like(params), ops.zeros_like(params)

    def step(self, params, gradient, state, t):
        params, m, v = adam_update(params, gradient, *state, t, self.rate, *self.betas)
        return params, (m, v)


# --------------------------------------------------------------------------- displays


def nonfinite_tile(canvas: np.ndarray, crop: int) -> np.ndarray:
    """A canvas that went NaN/Inf (a NaN weight upstream) is drawn magenta, never cast."""
    height, width, channels = canvas.shape
    if crop > 0 and height > 2 * crop and width > 2 * crop:
        height, width = height - 2 * crop, width - 2 * crop
    colour = NONFINITE_RGB if channels == 3 else (255,) * channels
    return np.broadcast_to(np.array(colour, np.uint8), (height, width, channels)).copy()


def deprocess(canvas: np.ndarray, crop: int) -> np.ndarray:
    """keras.io's deprocess_image: standardise, scale to 0.15 std around grey, crop, to uint8."""
    if not np.isfinite(canvas).all():
        return nonfinite_tile(canvas, crop)
    image = canvas.astype(np.float64)
    image = image - image.mean()
    image = image / (image.std() + 1e-5) * 0.15 + 0.5
    if crop > 0 and image.shape[0] > 2 * crop and image.shape[1] > 2 * crop:
        image = image[crop:-crop, crop:-crop]
    return (np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8)


class StandardisedDisplay:
    """keras.io: standardise the canvas and crop its border (25 of 180 pixels a side)."""

    def __init__(self, canvas_hw: tuple[int, int]):
        self.crop = int(round(min(canvas_hw) * 25 / 180))

    def __call__(self, canvas: np.ndarray) -> np.ndarray:
        return deprocess(canvas, self.crop)


class ClippedDisplay:
    """The pixels as they are (a parametrisation that keeps them in 0..255 needs nothing else)."""

    def __call__(self, canvas: np.ndarray) -> np.ndarray:
        if not np.isfinite(canvas).all():
            return nonfinite_tile(canvas, 0)
        return np.clip(canvas, 0, 255).round().astype(np.uint8)


# --------------------------------------------------------------------------- recipes


@dataclass(frozen=True)
class Recipe:
    image: object
    transforms: object
    optimiser: object
    display: object


def recipe(mode: str, canvas_hw: tuple[int, int], channels: int, rate: float, noise: float,
           betas: tuple[float, float] = (0.9, 0.999)) -> Recipe:
    """``fast``: the seeds' method done well (pixels, no transforms, normalised gradient steps);
    ``robust``: lucid's (Fourier image with decorrelated colour, random transforms, Adam);
    ``balanced``: lucid's image and optimiser in fewer steps, a larger Adam rate with shorter
    memories (``betas``) and the transforms as one resample (benchmarks/quality_benchmark.py and
    speed_candidates.py chose it on trained models)."""
    if mode == "balanced":
        return Recipe(FourierImage(canvas_hw, channels), AffineTransforms(canvas_hw), Adam(rate, betas),
                      ClippedDisplay())
    if mode == "fast":
        return Recipe(PixelImage(canvas_hw, channels, noise), NoTransforms(),
                      NormalisedGradient(rate, canvas_hw, channels), StandardisedDisplay(canvas_hw))
    if mode == "robust":
        return Recipe(FourierImage(canvas_hw, channels), LucidTransforms(canvas_hw), Adam(rate, betas),
                      ClippedDisplay())
    raise ValueError(f"no ascent recipe named {mode!r}")
