"""Two numbers besides activation for every gradient-ascent picture: does it show a feature, or
a pattern tuned to the pixel grid?

Activation alone cannot choose between ascent methods: pixel-space ascent (the seeds' method)
reaches high activations with high-frequency patterns that mean little, partly adversarial
examples (Olah et al., "Feature Visualization", Distill 2017). Two measures that such patterns
fail:

* **transformed**: the unit's mean response to the canvas seen slightly shifted, scaled and
  rotated (MEASURE_DRAWS fixed draws, the same for every layer of a canvas size). A feature
  survives a few pixels of shift; a pattern that only works on the exact pixel grid does not.
  ``kept`` is it as a share of the response to the canvas as it is.
* **high_frequency**: the share of the picture's spectral power (brightness, mean removed) above
  a quarter cycle per pixel, the top octave: noise puts about three quarters of its power there
  (white noise exactly 1 - pi/16 = 0.80), a photograph of a natural scene a few percent.
"""

from __future__ import annotations

import numpy as np

from .ascent_parts import random_affine

MEASURE_DRAWS = 4
MEASURE_SEED = 20171107  # Distill's "Feature Visualization" went out on 7 November 2017
# Wider in scale than the balanced mode's own transforms (0.95-1.05), so it is not scored on
# exactly what it trained against.
MEASURE_SHIFT, MEASURE_SCALE, MEASURE_DEGREES = 1 / 16, 0.1, 10.0
TOP_OCTAVE = 0.25  # cycles per pixel; the Nyquist frequency is 0.5


def measurement_matrices(canvas_hw: tuple[int, int]) -> list[np.ndarray]:
    """The fixed random shifts, scales and rotations every canvas of this size is measured under."""
    rng = np.random.default_rng(MEASURE_SEED)
    return [random_affine(canvas_hw, rng, MEASURE_SHIFT, MEASURE_SCALE, MEASURE_DEGREES) for _ in range(MEASURE_DRAWS)]


def high_frequency_share(picture: np.ndarray) -> float:
    """Share of the spectral power of ``picture`` (h, w[, c], any dtype) above TOP_OCTAVE; 0 for a flat picture."""
    brightness = np.asarray(picture, np.float64)
    if brightness.ndim == 3:
        brightness = brightness.mean(axis=-1)
    if not np.isfinite(brightness).all():
        return float("nan")
    brightness = brightness - brightness.mean()
    power = np.abs(np.fft.fft2(brightness)) ** 2
    fy = np.fft.fftfreq(brightness.shape[0])[:, None]
    fx = np.fft.fftfreq(brightness.shape[1])[None, :]
    total = power.sum()
    if total <= 1e-12 * brightness.size:
        return 0.0
    return float(power[np.hypot(fx, fy) > TOP_OCTAVE].sum() / total)
