"""Two checkpoints of one architecture, compared filter by filter.

The diff builds an ordinary site for each (into ``a/`` and ``b/`` of the diff site, through the
same mosaic cache, so a parent already built costs nothing), then adds what only a comparison
knows: each filter's kernel change, how much each layer's and each filter's response to the same
images changed (a layer downstream of a changed one changes although its own kernels did not),
the pictures of A, B and B − A of what changed, and the filters that became dead or came alive.
The pages and summary.md are written by ``site`` and ``summary`` from the resulting ``DiffReport``.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Callable

import numpy as np

from . import paths
from .build import build_site
from .config import ReportConfig
from .diff_records import RANKED_FILTERS, DecisionChange, DiffReport, FilterChange, LayerDiff, ranked_responses
from .errors import UsageError
from .layers import LayerInfo
from .loading import LoadedModel, load_images
from .analysis.model_loading import load_model
from .phases.differences import draw_filter_pictures, draw_image_diffs, draw_kernel_grids
from .records import LayerReport, Report
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


def kernel_changes(kernel_a: np.ndarray, kernel_b: np.ndarray,
                   responses: np.ndarray | None = None) -> tuple[FilterChange, ...]:
    """Per filter: relative L2 change and cosine similarity of the kernel, with its response
    change (``responses``, per filter) when measured; most changed kernel first."""
    flat_a = np.asarray(kernel_a, np.float64).reshape(-1, kernel_a.shape[-1]).T
    flat_b = np.asarray(kernel_b, np.float64).reshape(-1, kernel_b.shape[-1]).T
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        norm_a, norm_b = np.linalg.norm(flat_a, axis=1), np.linalg.norm(flat_b, axis=1)
        relative = np.linalg.norm(flat_b - flat_a, axis=1) / np.maximum(norm_a, EPSILON)
        cosine = (flat_a * flat_b).sum(axis=1) / np.maximum(norm_a * norm_b, EPSILON)
    measured = responses is not None
    changes = [FilterChange(f, float(relative[f]), float(cosine[f]),
                            float(responses[f]) if measured and f < len(responses) else None)
               for f in range(len(relative))]
    return tuple(sorted(changes, key=lambda c: (-np.nan_to_num(c.relative_l2, nan=np.inf), c.number)))


def response_changes(maps_a: np.ndarray, maps_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How much a layer's response to each image moved from A to B (maps: (N, H, W, C)).

    The layer, per image: ||B − A|| / ||A|| over all its maps. A filter, per image (N, C):
    ||B − A|| of its map over the layer's typical channel norm under A (root mean square), so a
    nearly silent channel's jitter stays small, one that wakes up gets a finite number, and the
    layer's number is the root mean square of its filters'.
    """
    a = np.asarray(maps_a, np.float64).reshape(len(maps_a), -1, maps_a.shape[-1])
    b = np.asarray(maps_b, np.float64).reshape(a.shape)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        per_filter = np.linalg.norm(b - a, axis=1)
        norm_a = np.linalg.norm(a, axis=(1, 2))
        layer = np.linalg.norm(per_filter, axis=1) / np.maximum(norm_a, EPSILON)
        per_filter = per_filter / np.maximum(norm_a / np.sqrt(a.shape[-1]), EPSILON)[:, None]
    return layer, per_filter


def filters_to_draw(changes: tuple[FilterChange, ...], became_dead: tuple[int, ...], came_alive: tuple[int, ...],
                    max_filters: int) -> list[int]:
    """The filters a diff page shows pictures of, most changed first: the ``max_filters`` most
    changed kernels, then the filters ranked by response change, and every filter that became
    dead or came alive, so every filter the pages link to has its pictures."""
    numbers = [c.number for c in changes if c.kernel_changed][:max_filters]
    numbers += [c.number for c in ranked_responses(changes)[:RANKED_FILTERS]]
    return list(dict.fromkeys(numbers + list(became_dead) + list(came_alive)))


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
    layers_a, layers_b = loaded_a.walk.inspect().layers, loaded_b.walk.inspect().layers
    a_name, b_name = checkpoint_names(config_a, config_b)
    check_same_architecture(list(layers_a), list(layers_b), a_name, b_name)
    with staged_site(out, outside) as root:
        results = {side: build_site(replace(config, out=os.path.join(root, side), single_file=None, stream=False),
                                     progress)
                   for side, config in (("a", config_a), ("b", config_b))}
        layer_diffs = compare(results["a"].report, results["b"].report, loaded_a, loaded_b, config_a.max_filters, root)
        # by file name: the diff site is published, the build machine's folders are not
        diff = DiffReport(results["a"].report, results["b"].report, os.path.basename(a_name), os.path.basename(b_name),
                          tuple(layer_diffs), decision_changes(results["a"].report, results["b"].report))
        write_diff_site(diff, root)
        write_text(root, paths.SUMMARY_FILE, diff_summary(diff))
        write_text(root, paths.MARKER_FILE, DIFF_MARKER)
    return {"layers": layer_diffs, "seconds": time.monotonic() - started,
            "cache_hits": results["a"].cache_hits + results["b"].cache_hits,
            "cache_misses": results["a"].cache_misses + results["b"].cache_misses}


def map_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two heatmaps of one size (1: the same place; 0: disjoint or one blank)."""
    a, b = (np.nan_to_num(np.asarray(m, np.float64)).ravel() for m in (a, b))
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norms) if norms > 0 else 0.0


def decision_changes(report_a: Report, report_b: Report) -> tuple[DecisionChange, ...]:
    """Per image explained in both A and B: how its class, Grad-CAM and deciding units changed."""
    images_b = {image.name: image for image in report_b.images}
    changes = []
    for image in report_a.images:
        other = images_b.get(image.name)
        if image.attribution is None or other is None or other.attribution is None:
            continue
        a, b = image.attribution, other.attribution
        shift = float(np.hypot(a.gradcam.center[0] - b.gradcam.center[0], a.gradcam.center[1] - b.gradcam.center[1]))
        units_b = {(unit.layer_name, unit.number) for unit in b.units}
        shared = tuple((unit.layer_name, unit.number) for unit in a.units if (unit.layer_name, unit.number) in units_b)
        changes.append(DecisionChange(image, a, b, shift, map_similarity(a.gradcam.heatmap, b.gradcam.heatmap), shared))
    return tuple(changes)


def _feature_maps(loaded: LoadedModel, pixels: np.ndarray, layers: list[LayerInfo]) -> dict[int, np.ndarray]:
    return loaded.run.feature_probe(layers)(loaded.model_input(pixels)) if layers else {}


def compare(report_a: Report, report_b: Report, loaded_a: LoadedModel, loaded_b: LoadedModel, max_filters: int,
            root: str) -> list[LayerDiff]:
    """Each conv layer of A against B: kernel and response changes, dead sets, and the diff's own
    pictures."""
    layers_b = {layer.info.qualified_name: layer for layer in report_b.layers}
    image_args = tuple(image.source for image in report_a.images)  # those A's site could read
    images, _ = load_images(image_args, loaded_a.input_hw, loaded_a.channels) if image_args else ([], [])
    names = [image.name for image in images]
    drawable = [layer.info for layer in report_a.layers if layer.info.takes_images] if images else []
    pixels = np.stack([image.pixels for image in images]) if images else None
    maps_a, maps_b = _feature_maps(loaded_a, pixels, drawable), _feature_maps(loaded_b, pixels, drawable)
    diffs = []
    for layer_a in report_a.layers:
        info, slug = layer_a.info, layer_a.slug
        kernel_a, kernel_b = loaded_a.walk.kernel(info).kernel, loaded_b.walk.kernel(info).kernel
        dead_a, dead_b = _dead(layer_a), _dead(layers_b[info.qualified_name])
        became_dead, came_alive = tuple(sorted(dead_b - dead_a)), tuple(sorted(dead_a - dead_b))
        a, b = maps_a.get(info.index), maps_b.get(info.index)
        layer_change, per_filter = response_changes(a, b) if a is not None else (None, None)
        changes = kernel_changes(kernel_a, kernel_b, None if per_filter is None else per_filter.mean(axis=0))
        numbers = filters_to_draw(changes, became_dead, came_alive, max_filters)
        responded = {c.number for c in changes if c.response_changed}  # a map that did not change shows nothing
        image_of = {number: int(np.argmax(np.nan_to_num(per_filter[:, number], nan=np.inf)))  # where it changed most
                    for number in numbers if number in responded}
        diffs.append(LayerDiff(
            info, slug, changes, became_dead, came_alive,
            images=draw_image_diffs(info, slug, names, a, b, layer_change, root) if a is not None else (),
            filter_grids=draw_kernel_grids(info, slug, kernel_a, kernel_b, max_filters, root),
            filter_pictures=draw_filter_pictures(info, slug, kernel_a, kernel_b, numbers,
                                                 {c.number for c in changes if c.kernel_changed}, root, names, a, b,
                                                 image_of),
            response_change=None if layer_change is None else float(np.mean(layer_change))))
    return diffs
