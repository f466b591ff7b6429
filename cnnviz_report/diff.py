"""Two checkpoints of one architecture, compared filter by filter.

The diff builds an ordinary site for each (into ``a/`` and ``b/`` of the diff site, through the
same mosaic cache, so a parent already built costs nothing), then adds what only a comparison
knows: each filter's kernel change, the ranking of the most changed filters, the difference of
the feature maps on the same images, and the filters that became dead or came alive. The pages
and summary.md are written by ``site`` and ``summary`` from the resulting ``DiffReport``.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Callable

import numpy as np

from . import paths
from .analysis.activations import FeatureProbe
from .analysis.weights import kernel_view
from .build import build_site
from .config import ReportConfig
from .errors import UsageError
from .inspection import LayerInfo, inspect_model
from .loading import LoadedModel, load_images, load_model
from .phases.differences import draw_differences, draw_kernel_pair
from .records import DiffReport, FilterChange, LayerDiff, LayerReport, Report
from .site import write_diff_site
from .staging import check_output_folder, staged_site, write_text
from .summary import diff_summary

EPSILON = 1e-12
DIFF_MARKER = '{"tool": "cnnviz_report", "kind": "diff"}\n'


def check_same_architecture(a_layers: list[LayerInfo], b_layers: list[LayerInfo], a_name: str, b_name: str) -> None:
    """Raise naming the first layer whose type, name or kernel shape differs."""
    for left, right in zip(a_layers, b_layers):
        if (left.qualified_name, left.type_name, left.kernel_shape, left.output_shape) != \
                (right.qualified_name, right.type_name, right.kernel_shape, right.output_shape):
            raise UsageError(b_name, f"not the architecture of {a_name}: layer {left.index} is "
                             f"{left.qualified_name!r} {left.type_name} {left.kernel_shape} in A but "
                             f"{right.qualified_name!r} {right.type_name} {right.kernel_shape} in B")
    if len(a_layers) != len(b_layers):
        shorter, first_extra = (a_layers, b_layers) if len(a_layers) < len(b_layers) else (b_layers, a_layers)
        raise UsageError(b_name, f"not the architecture of {a_name}: {len(a_layers)} layers in A, {len(b_layers)} "
                         f"in B (first unmatched: {first_extra[len(shorter)].qualified_name!r})")


def kernel_changes(kernel_a: np.ndarray, kernel_b: np.ndarray) -> tuple[FilterChange, ...]:
    """Per filter: relative L2 change and cosine similarity; most changed first."""
    flat_a = np.asarray(kernel_a, np.float64).reshape(-1, kernel_a.shape[-1]).T
    flat_b = np.asarray(kernel_b, np.float64).reshape(-1, kernel_b.shape[-1]).T
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        norm_a, norm_b = np.linalg.norm(flat_a, axis=1), np.linalg.norm(flat_b, axis=1)
        relative = np.linalg.norm(flat_b - flat_a, axis=1) / np.maximum(norm_a, EPSILON)
        cosine = (flat_a * flat_b).sum(axis=1) / np.maximum(norm_a * norm_b, EPSILON)
    changes = [FilterChange(f, float(relative[f]), float(cosine[f])) for f in range(len(relative))]
    return tuple(sorted(changes, key=lambda c: (-np.nan_to_num(c.relative_l2, nan=np.inf), c.number)))


def _dead(layer: LayerReport) -> set[int]:
    """Dead on the images when there are images, else ascent-dead."""
    health = layer.health
    if health is None:
        return set()
    return set(health.dead) if health.images else set(health.ascent_dead)


def checkpoint_names(config_a: ReportConfig, config_b: ReportConfig) -> tuple[str, str]:
    """A and B as the user named them (B is a weights file or a model file)."""
    return config_a.model or "demo model", config_b.weights or config_b.model or "demo model"


def diff_models(config_a: ReportConfig, config_b: ReportConfig, out: str,
                progress: Callable | None = None) -> dict:
    """Build ``out`` with the A and B sites and the comparison pages; returns what was found."""
    started = time.monotonic()
    outside = config_a.images + tuple(p for p in (config_a.model, config_b.model, config_b.weights) if p)
    check_output_folder(out, outside)
    loaded_a, loaded_b = load_model(config_a), load_model(config_b)
    layers_a, layers_b = inspect_model(loaded_a.model).layers, inspect_model(loaded_b.model).layers
    a_name, b_name = checkpoint_names(config_a, config_b)
    check_same_architecture(list(layers_a), list(layers_b), a_name, b_name)
    with staged_site(out, outside) as root:
        results = {side: build_site(replace(config, out=os.path.join(root, side), single_file=None), progress)
                   for side, config in (("a", config_a), ("b", config_b))}
        layer_diffs = compare(results["a"].report, results["b"].report, loaded_a, loaded_b, config_a.max_filters, root)
        diff = DiffReport(results["a"].report, results["b"].report, a_name, b_name, tuple(layer_diffs))
        write_diff_site(diff, root)
        write_text(root, paths.SUMMARY_FILE, diff_summary(diff))
        write_text(root, paths.MARKER_FILE, DIFF_MARKER)
    return {"layers": layer_diffs, "seconds": time.monotonic() - started,
            "cache_hits": results["a"].cache_hits + results["b"].cache_hits,
            "cache_misses": results["a"].cache_misses + results["b"].cache_misses}


def _feature_maps(loaded: LoadedModel, pixels: np.ndarray, layers: list[LayerInfo]) -> dict[int, np.ndarray]:
    return FeatureProbe(loaded.model, layers)(loaded.model_input(pixels)) if layers else {}


def compare(report_a: Report, report_b: Report, loaded_a: LoadedModel, loaded_b: LoadedModel, max_filters: int,
            root: str) -> list[LayerDiff]:
    """Each conv layer of A against B: kernel changes, dead sets, and the diff's own pictures."""
    layers_b = {layer.info.qualified_name: layer for layer in report_b.layers}
    image_args = tuple(image.source for image in report_a.images)  # those A's site could read
    images, _ = load_images(image_args, loaded_a.input_hw, loaded_a.channels) if image_args else ([], [])
    drawable = [layer.info for layer in report_a.layers if layer.info.takes_images] if images else []
    pixels = np.stack([image.pixels for image in images]) if images else None
    maps_a, maps_b = _feature_maps(loaded_a, pixels, drawable), _feature_maps(loaded_b, pixels, drawable)
    diffs = []
    for layer_a in report_a.layers:
        info = layer_a.info
        kernel_a, kernel_b = kernel_view(loaded_a.model, info).kernel, kernel_view(loaded_b.model, info).kernel
        grids = draw_kernel_pair(info, layer_a.slug, kernel_a, kernel_b, max_filters, root)
        pictures = ()
        if info.index in maps_a:
            pictures = draw_differences(info, layer_a.slug, [image.name for image in images], maps_a[info.index],
                                        maps_b[info.index], root)
        dead_a, dead_b = _dead(layer_a), _dead(layers_b[info.qualified_name])
        diffs.append(LayerDiff(info, layer_a.slug, kernel_changes(kernel_a, kernel_b), tuple(sorted(dead_b - dead_a)),
                               tuple(sorted(dead_a - dead_b)), pictures, grids))
    return diffs
