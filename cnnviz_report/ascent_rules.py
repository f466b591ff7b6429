"""The ascent's rules that the pages state as well as analysis/ follows: which recipe a mode
climbs a canvas with, and the share of its response a picture keeps under transforms. Here, not in
analysis/, so the presentation can say them without importing the code that climbs."""

from __future__ import annotations

import numpy as np

# balanced mode climbs canvases this small (a receptive field of at most 16 px: the first layers)
# the fast way: there, on trained Xception and MobileNetV2 backbones, the Fourier image reached
# up to half of fast's response under transforms and drew blurred blobs where fast drew the
# layer's crisp colour patterns (benchmarks/quality_benchmark.py).
SMALL_CANVAS = 32


def recipe_name(mode: str, canvas_hw: tuple[int, int]) -> str:
    """The recipe ``mode`` climbs a canvas of ``canvas_hw`` with (balanced: fast on small canvases)."""
    if mode == "balanced" and max(canvas_hw) <= SMALL_CANVAS:
        return "fast"
    return mode


def kept_share(transformed: float | None, activation: float | None) -> float | None:
    """``transformed`` as a share of ``activation``; None where that means nothing (no positive response)."""
    if transformed is None or activation is None or not np.isfinite(transformed) or not np.isfinite(activation) \
            or activation <= 0:
        return None
    return float(transformed / activation)
