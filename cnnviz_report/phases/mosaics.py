"""Phase: each layer's gradient-ascent mosaic, through the cache, and its filters' verdicts."""

from __future__ import annotations

from typing import Callable

import numpy as np

from .. import paths, render
from ..analysis.ascent import AscentSettings, AscentTrunk, plan_canvases, plan_groups, trace_cost, upstream_cost
from ..cache import AscentCache, MosaicEntry, ascent_key
from ..config import ReportConfig
from ..health import ASCENT_JUDGE_STEPS, at_floor
from ..inspection import LayerInfo, ModelInfo
from ..loading import LoadedModel
from ..records import AscentQuality, AscentTile, MosaicPictures

MOSAIC_FILTERS = 64
SCAN_DIVISOR = 4  # --select top first climbs every filter for a quarter of the steps


def ascent_settings(config: ReportConfig) -> AscentSettings:
    return AscentSettings(mode=config.ascent_mode, steps=config.ascent_steps,
                          learning_rate=config.ascent_learning_rate, seed=config.seed)


def mosaic_count(config: ReportConfig, info: LayerInfo) -> int:
    """How many filters of ``info`` get an ascent picture (0: no mosaic)."""
    if config.ascent_steps == 0:
        return 0
    return min(MOSAIC_FILTERS, config.max_filters, info.filters or 0)


def ascent_targets(model_info: ModelInfo) -> list[LayerInfo]:
    """Every conv layer a canvas can be climbed for, selected or not: the ascent groups are planned
    from the model alone, so a layer's pictures do not depend on which others were asked for."""
    return [info for info in model_info.conv_layers if info.takes_images]


def scan_steps(steps: int) -> int:
    return max(1, steps // SCAN_DIVISOR)


def canvas_steps(config: ReportConfig, info: LayerInfo) -> float:
    """How many canvas-steps ``info``'s mosaic climbs (--select top adds its brief scan)."""
    steps = ascent_settings(config).step_count
    count = mosaic_count(config, info)
    scanned = config.select == "top" and (info.filters or 0) > count
    return steps * count + ((info.filters or 0) * scan_steps(steps) if scanned else 0)


def ascent_trunk(loaded: LoadedModel, model_info: ModelInfo, config: ReportConfig) -> AscentTrunk:
    targets = ascent_targets(model_info)
    return AscentTrunk(loaded.model, list(model_info.conv_layers), loaded.input_hw, loaded.channels, loaded.preprocess,
                       ascent_settings(config), loaded.channels_first, targets=targets,
                       work={info.index: canvas_steps(config, info) for info in targets})


def unit_end(model_info: ModelInfo, info: LayerInfo) -> LayerInfo:
    """The last layer of ``info``'s unit (the conv itself when the unit is its raw output)."""
    if not info.unit_layers:
        return info
    return next(layer for layer in model_info.layers
                if layer.path == info.path and layer.name == info.unit_layers[-1] and layer.index > info.index)


def ascent_costs(model_info: ModelInfo, layers: list[LayerInfo], config: ReportConfig,
                 input_hw: tuple[int, int]) -> dict[int, float]:
    """Each layer's estimated mosaic cost in FLOP-equivalents: its group's step (the engine's own
    estimate) times the canvas-steps it climbs, and for the first layer of a group the trace of
    the group's graph, so the ETA stays honest where tracing outweighs arithmetic; layers
    without a mosaic are left out."""
    settings = ascent_settings(config)
    conv_layers, targets = list(model_info.conv_layers), ascent_targets(model_info)
    canvases = plan_canvases(targets, input_hw, True, settings)
    group_cost, traces = {}, {}
    work = {info.index: canvas_steps(config, info) for info in targets}
    for group in plan_groups(conv_layers, targets, input_hw, canvases, work):
        cost = upstream_cost(conv_layers, group[-1], input_hw)
        group_cost.update((info.index, cost) for info in group)
        traces[group[0].index] = trace_cost(group[-1])
    costs = {}
    for info in layers:
        if mosaic_count(config, info) and info.index in group_cost:
            arithmetic = canvas_steps(config, info) * group_cost[info.index].step_flops(canvases[info.index])
            costs[info.index] = arithmetic + traces.get(info.index, 0.0)
    return costs


def _ascend(trunk: AscentTrunk, info: LayerInfo, config: ReportConfig, count: int,
            report: Callable[[float, str], None]) -> MosaicEntry:
    """The mosaic's filters, pictures and activations; --select top scans every filter first."""
    settings = ascent_settings(config)
    engine = trunk.engine(info)
    def batches(share_before: float, share: float, words: str):
        """Tell ``report`` after each batch but the last (the next step's start says that)."""
        return lambda done, total: report(share_before + share * done / total, f"{words} {done} of {total}") \
            if done < total else None

    chosen = list(range(count))
    scan_work = 0.0
    if config.select == "top" and (info.filters or 0) > count:
        scan_count = scan_steps(settings.step_count)
        scan_work = info.filters * scan_count / (info.filters * scan_count + count * settings.step_count)
        scan = engine.run(list(range(info.filters)), steps=scan_count,
                          on_batch=batches(0.0, scan_work, "scanning filters,"))
        chosen = [int(f) for f in np.argsort(-scan.activations, kind="stable")[:count]]
    result = engine.run(chosen, on_batch=batches(scan_work, 1 - scan_work, "filters"))
    order = np.arange(len(chosen))
    if config.select == "top":
        order = np.argsort(-result.activations, kind="stable")  # the old Keras example's order
    return MosaicEntry(np.asarray(result.filter_indices, np.int64)[order], result.images[order],
                       result.activations[order], result.transformed[order], result.high_frequency[order],
                       result.canvas_hw,
                       None if engine.floor is None else np.asarray(engine.floor, np.float64))


def draw_mosaic(loaded: LoadedModel, trunk: Callable[[], AscentTrunk], info: LayerInfo, slug: str,
                card_numbers: range, config: ReportConfig, root: str, cache: AscentCache, weights_digest: str,
                report: Callable[[float, str], None]) -> MosaicPictures:
    """The layer's mosaic and each card's picture, from the cache or a fresh ascent.

    ``trunk()`` gives the model's ascent engines (made on the first cache miss);
    ``weights_digest`` covers the weights up to the unit's end; ``report(share, detail)`` hears
    how far the ascent has got.
    """
    count = mosaic_count(config, info)
    settings = ascent_settings(config)
    key = ascent_key(weights_digest, info, settings, loaded.geometry, {"select": config.select, "count": count})
    entry = cache.load(key)
    if entry is None:
        entry = _ascend(trunk(), info, config, count, report)
        cache.store(key, entry)
    filters = [int(f) for f in entry.filter_indices]
    activations = [float(a) for a in entry.activations]
    judged = settings.step_count >= ASCENT_JUDGE_STEPS
    dead = tuple(f for f, a in zip(filters, activations)
                 if judged and entry.floor is not None and np.isfinite(a) and at_floor(a, entry.floor[f]))
    broken = {f for f, a in zip(filters, activations) if not np.isfinite(a)}  # NaN/Inf upstream
    labels = [f"{f} nan" if f in broken else f"{f} dead" if f in dead else f"{f}  {a:.3g}"
              for f, a in zip(filters, activations)]
    which = "most activated" if config.select == "top" else "first"
    mosaic = render.save_png(
        render.mosaic(entry.images, labels, [f in dead or f in broken for f in filters]), root,
        paths.layer_asset(slug, "mosaic"), f"gradient-ascent images of the {which} {count} filters of {info.name}")
    tiles = []
    for position, (number, activation) in enumerate(zip(filters, activations)):
        quality = AscentQuality(activation, float(entry.transformed[position]), float(entry.high_frequency[position]))
        picture = None
        if number in card_numbers:
            picture = render.save_png(
                render.scale_tile(render.display_tile(entry.images[position]), 128), root,
                paths.filter_asset(slug, number, "ascent"), f"gradient-ascent image of filter {number}")
        tiles.append(AscentTile(number, picture, quality, number in dead or number in broken))
    thumbnail = render.save_png(render.thumbnail([render.display_tile(p) for p in entry.images[:4]]), root,
                                paths.layer_asset(slug, "thumb"), f"the first gradient-ascent images of {info.name}")
    return MosaicPictures(mosaic, tuple(filters), dead, judged, entry.canvas_hw, tuple(tiles), thumbnail)
