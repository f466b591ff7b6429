"""Two checkpoints of one architecture, compared filter by filter.

The diff builds an ordinary site for each (into ``a/`` and ``b/`` of the diff site, through the
same mosaic cache, so a parent already built costs nothing), then adds what only a comparison
knows: each filter's kernel change, the ranking of the most changed filters, the difference of
the feature maps on the same images, and the filters that became dead or came alive.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from . import paths, render
from .build import (BuildResult, _refuse_output, _staging_dir, _swap_in, _write_failure, _write_text, build_site,
                    remove_leftovers)
from .config import ReportConfig
from .errors import UsageError
from .inspection import LayerInfo, inspect_model
from .loading import load_images, load_model
from .summary import md_link, md_text

TOP_FILTERS = 16
EPSILON = 1e-12


@dataclass(frozen=True)
class FilterChange:
    number: int
    relative_l2: float  # ||B - A|| / ||A||
    cosine: float  # of A's and B's kernels


@dataclass(frozen=True)
class LayerDiff:
    info: LayerInfo
    slug: str
    changes: tuple[FilterChange, ...]  # every filter, most changed first
    became_dead: tuple[int, ...]
    came_alive: tuple[int, ...]
    difference_maps: tuple[tuple[str, render.ImageAsset], ...] = ()  # (image name, picture)
    filter_grids: tuple[render.ImageAsset, render.ImageAsset] | None = None  # A and B on one shared scale

    @property
    def changed(self) -> tuple[FilterChange, ...]:
        """The filters whose kernel changed at all, most changed first."""
        return tuple(c for c in self.changes if not c.relative_l2 == 0.0)

    @property
    def mean_change(self) -> float:
        return float(np.mean([c.relative_l2 for c in self.changes])) if self.changes else 0.0


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


def difference_map(fmap_a: np.ndarray, fmap_b: np.ndarray, target: int = 224) -> np.ndarray:
    """Mean over channels of B - A, red where B responds more, blue where less, 0 white."""
    with np.errstate(invalid="ignore", over="ignore"):
        delta = (np.asarray(fmap_b, np.float64) - np.asarray(fmap_a, np.float64)).mean(axis=-1)
    finite = np.abs(delta[np.isfinite(delta)])
    scale = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    unit = np.clip(np.nan_to_num(delta / scale, nan=0.0) * 0.5 + 0.5, 0.0, 1.0)
    return render.scale_tile(render.mark_nonfinite(render.colorize(unit, "RdBu_r"), delta), target)


def _dead(layer_report) -> set[int]:
    health = layer_report.health
    if health is None:
        return set()
    return set(health.dead) if health.images else set(health.ascent_dead)


def diff_models(config_a: ReportConfig, config_b: ReportConfig, out: str,
                progress: Callable | None = None) -> dict:
    """Build ``out`` with the A and B sites and the comparison pages; returns what was found."""
    started = time.monotonic()
    remove_leftovers(out)
    _refuse_output(out, config_a.images + tuple(p for p in (config_a.model, config_b.model, config_b.weights) if p))
    loaded_a, loaded_b = load_model(config_a), load_model(config_b)
    layers_a, layers_b = inspect_model(loaded_a.model).layers, inspect_model(loaded_b.model).layers
    check_same_architecture(list(layers_a), list(layers_b), config_a.model or "demo", config_b.model or "demo")
    staging = None
    try:
        staging = _staging_dir(out)
        results = {}
        for side, config in (("a", config_a), ("b", config_b)):
            results[side] = build_site(replace(config, out=os.path.join(staging, side), single_file=None), progress)
        layer_diffs = _compare(results["a"], results["b"], loaded_a, loaded_b, config_a, staging)
        from .site import write_diff_site

        write_diff_site(layer_diffs, results["a"].report, results["b"].report, config_a, config_b, staging)
        _write_text(staging, paths.SUMMARY_FILE, diff_summary(layer_diffs, config_a, config_b))
        _write_text(staging, paths.MARKER_FILE, '{"tool": "cnnviz_report", "kind": "diff"}\n')
        _swap_in(staging, out)
    except OSError as error:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
        raise _write_failure(out, error, staging) from error
    except BaseException:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"layers": layer_diffs, "seconds": time.monotonic() - started,
            "cache_hits": results["a"].cache_hits + results["b"].cache_hits,
            "cache_misses": results["a"].cache_misses + results["b"].cache_misses}


def _compare(result_a: BuildResult, result_b: BuildResult, loaded_a, loaded_b, config: ReportConfig,
             root: str) -> list[LayerDiff]:
    from .analysis.activations import FeatureProbe
    from .analysis.weights import kernel_view

    reports_b = {r.info.qualified_name: r for r in result_b.report.layers}
    image_args = tuple(image.source for image in result_a.report.images)  # those A's site could read
    images, _ = load_images(image_args, loaded_a.input_hw, loaded_a.channels) if image_args else ([], [])
    drawable = [r.info for r in result_a.report.layers if r.info.takes_images]
    maps_a, maps_b = {}, {}
    if images and drawable:
        pixels = np.stack([image.pixels for image in images])
        for loaded, maps in ((loaded_a, maps_a), (loaded_b, maps_b)):
            model_input = np.asarray(loaded.preprocess(pixels), np.float32)
            if loaded.channels_first:
                model_input = np.moveaxis(model_input, -1, 1)
            maps.update(FeatureProbe(loaded.model, drawable)(model_input))
    diffs = []
    for report_a in result_a.report.layers:
        info = report_a.info
        report_b = reports_b[info.qualified_name]
        kernel_a, kernel_b = kernel_view(loaded_a.model, info).kernel, kernel_view(loaded_b.model, info).kernel
        changes = kernel_changes(kernel_a, kernel_b)
        grids = tuple(render.save_png(
            render.filter_grid(mine, config.max_filters, scale_with=other).image, root,
            paths.layer_asset(report_a.slug, f"filters-{side}"), f"kernels of {info.name} in {side.upper()}, "
            "on the scale of both checkpoints") for side, mine, other in (("a", kernel_a, kernel_b),
                                                                          ("b", kernel_b, kernel_a)))
        dead_a, dead_b = _dead(report_a), _dead(report_b)
        pictures = []
        if info.index in maps_a:
            for position, image in enumerate(images):
                slug = paths.image_slug(image.index, image.name)
                pictures.append((image.name, render.save_png(
                    difference_map(maps_a[info.index][position], maps_b[info.index][position]), root,
                    paths.layer_asset(report_a.slug, "difference", slug),
                    f"mean feature map of {info.name} under B minus under A for {image.name}")))
        diffs.append(LayerDiff(info, report_a.slug, changes, tuple(sorted(dead_b - dead_a)),
                               tuple(sorted(dead_a - dead_b)), tuple(pictures), grids))
    return diffs


def ranked_layers(diffs: list[LayerDiff]) -> list[LayerDiff]:
    """Most changed first; NaN (a NaN weight) ranks first; equal changes keep model order."""
    return sorted(diffs, key=lambda d: (-np.nan_to_num(d.mean_change, nan=np.inf), d.info.index))


def diff_summary(diffs: list[LayerDiff], config_a: ReportConfig, config_b: ReportConfig) -> str:
    """Markdown for the review thread: the most changed layers and filters, with links."""
    a_name, b_name = config_a.model or "demo", config_b.weights or config_b.model or "demo"
    lines = [f"# Checkpoint diff: {md_text(os.path.basename(a_name))} → {md_text(os.path.basename(b_name))}", "",
             f"Open the comparison: {md_link('index.html', paths.INDEX_PAGE)}.", "",
             "| Layer | Mean change | Most changed filters | Became dead | Came alive |", "|---|--:|---|---|---|"]
    for diff in ranked_layers(diffs):
        top = ", ".join(md_link(f"{c.number} ({c.relative_l2:.2g})", f"{paths.layer_page(diff.slug)}#"
                                f"{paths.filter_anchor(c.number)}") for c in diff.changed[:5]) or "unchanged"
        lines.append(f"| {md_link(diff.info.qualified_name, paths.layer_page(diff.slug))} | {diff.mean_change:.3g} | "
                     f"{top} | {', '.join(map(str, diff.became_dead)) or '–'} | "
                     f"{', '.join(map(str, diff.came_alive)) or '–'} |")
    lines += ["", "Change: relative L2 distance of a filter's kernel, ||B − A|| / ||A||.", ""]
    return "\n".join(lines)
