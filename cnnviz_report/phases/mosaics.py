"""Phase: each layer's gradient-ascent mosaic, through the cache, and its filters' verdicts."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from .. import paths, render
from ..analysis.framework import bfloat16_matrix_units, device_memory
from ..analysis.ascent import (AscentSettings, AscentTrunk, BatchResult, plan_canvases, plan_groups, trace_cost,
                               upstream_cost)
from ..cache import AscentCache, MosaicEntry, ResultCache, ascent_key
from ..config import ALL_FILTERS, MOSAIC_FILTERS, ReportConfig
from ..executors import process_state
from ..health import ASCENT_JUDGE_STEPS, at_floor
from ..layers import LayerInfo, ModelInfo
from ..loading import LoadedModel
from ..records import AscentQuality, AscentTile, MosaicPictures

SCAN_DIVISOR = 4  # --select top first climbs every filter for a quarter of the steps


def ascent_settings(config: ReportConfig) -> AscentSettings:
    """The ascent's settings, with the device's memory and whether it climbs faster in bfloat16
    read here, once, by the build's driver: every Ray worker then plans the same batches in the
    same precision, whatever it runs on."""
    return AscentSettings(mode=config.ascent_mode, steps=config.ascent_steps,
                          learning_rate=config.ascent_learning_rate, seed=config.seed,
                          device_memory=device_memory(), precision=ascent_precision(config))


def ascent_precision(config: ReportConfig) -> str:
    """``--precision`` as the engine takes it: auto is "mixed" (bfloat16 for the dense layers)
    where the device has bfloat16 matrix units, float32 elsewhere."""
    if config.precision == "auto":
        return "mixed" if bfloat16_matrix_units() else "float32"
    return config.precision


def mosaic_count(config: ReportConfig, info: LayerInfo) -> int:
    """How many filters of ``info`` get an ascent picture (0: no mosaic)."""
    if config.ascent_steps == 0:
        return 0
    limit = config.max_filters if config.max_filters == ALL_FILTERS else min(MOSAIC_FILTERS, config.max_filters)
    return min(limit, info.filters or 0)


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


def ascent_trunk(loaded: LoadedModel, model_info: ModelInfo, config: ReportConfig,
                 settings: AscentSettings | None = None) -> AscentTrunk:
    """The model's ascent engines (``settings``: the driver's, where a worker makes them)."""
    targets = ascent_targets(model_info)
    return loaded.run.ascent_trunk(list(model_info.conv_layers), loaded.input_hw, loaded.channels, loaded.preprocess,
                                   settings or ascent_settings(config), loaded.channels_first, targets,
                                   {info.index: canvas_steps(config, info) for info in targets})


def unit_end(model_info: ModelInfo, info: LayerInfo) -> LayerInfo:
    """The last layer of ``info``'s unit that is a row of the layer table (the conv itself when the
    unit is its raw output; a Keras unit's keras.ops calls are no rows, and hold no weights)."""
    rows = {layer.name: layer for layer in model_info.layers if layer.path == info.path and layer.index > info.index}
    return next((rows[name] for name in reversed(info.unit_layers) if name in rows), info)


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


@dataclass(frozen=True)
class AscentWork:
    """What every ascent unit of one model shares (sent once to each Ray worker); ``setup``
    makes the model's ascent engines, ``run`` climbs one batch of one layer's filters."""

    key: str
    loaded: LoadedModel
    model_info: ModelInfo
    config: ReportConfig
    settings: AscentSettings  # the driver's, device memory and all: every worker plans alike

    def setup(self) -> AscentTrunk:
        return ascent_trunk(self.loaded, self.model_info, self.config, self.settings)

    def run(self, trunk: AscentTrunk, unit: "AscentUnit") -> BatchResult:
        info = next(layer for layer in self.model_info.layers if layer.index == unit.layer)
        return trunk.engine(info).climb_batch(unit.filters, unit.count, unit.steps)


@dataclass(frozen=True)
class AscentUnit:
    """One batch of one layer's filters (``filters``: padded to the batch size, the first
    ``count`` are wanted), climbed ``steps`` steps."""

    layer: int
    filters: tuple[int, ...]
    count: int
    steps: int


def ascent_work(loaded: LoadedModel, model_info: ModelInfo, config: ReportConfig, model_digest: str) -> AscentWork:
    """The model's ``AscentWork``, keyed by its weights and every setting that shapes the engines."""
    settings = ascent_settings(config)
    key = hashlib.sha256(json.dumps({"weights": model_digest, "settings": config.settings, "ascent": asdict(settings),
                                     "geometry": loaded.geometry}, sort_keys=True, default=str).encode()).hexdigest()
    return AscentWork(key, loaded, model_info, config, settings)


class MosaicClimber:
    """Every selected layer's ascent as units of work: ``start`` plans a layer's units (from the
    engine's batch plan, so the same units whichever executor runs them) and submits those not
    in the unit cache; ``entry`` waits for them and joins them. A finished unit is stored as soon
    as it arrives, so a killed build loses only the units under way; a finished layer is one
    ``MosaicEntry`` in the layer cache."""

    def __init__(self, work: AscentWork, executor, cache: AscentCache, unit_cache: ResultCache,
                 digests: dict[int, str]):
        self.work, self.executor, self.cache, self.unit_cache, self.digests = work, executor, cache, unit_cache, digests
        self._entries: dict[int, MosaicEntry] = {}
        self._keys: dict[int, str] = {}
        # layer -> (stage, unit keys, results found in the cache, tickets of the others, filters a unit)
        self._pending: dict[int, tuple] = {}
        self._first_batches: list[tuple[LayerInfo, int]] = []  # (layer, batch size) of each layer to climb
        self._tracing: AscentTrunk | None = None  # the engines tracing ahead

    def _trunk(self) -> AscentTrunk:
        """The driver's own engines, for the plan and the floors (tracing happens where units run)."""
        return process_state(self.work.key, lambda: self.work)[1]

    def start(self, info: LayerInfo) -> None:
        config, loaded = self.work.config, self.work.loaded
        count = mosaic_count(config, info)
        key = ascent_key(self.digests[unit_end(self.work.model_info, info).index], info, ascent_settings(config),
                         loaded.geometry, {"select": config.select, "count": count})
        self._keys[info.index] = key
        entry = self.cache.load(key)
        if entry is not None:
            self._entries[info.index] = entry
            return
        engine = self._trunk().engine(info)
        steps = ascent_settings(config).step_count
        if config.select == "top" and (info.filters or 0) > count:
            self._submit(info, "scan", engine, list(range(info.filters)), scan_steps(steps))
        else:
            self._submit(info, "climb", engine, list(range(count)), steps)

    def _submit(self, info: LayerInfo, stage: str, engine, filters: list[int], steps: int) -> None:
        units, left = [], len(filters)
        for padded in engine.batches(filters):
            units.append(AscentUnit(info.index, padded, min(left, len(padded)), steps))
            left -= len(padded)
        keys = [self._unit_key(info, stage, unit) for unit in units]
        found = [self.unit_cache.load(key) for key in keys]
        missing = [position for position, result in enumerate(found) if result is None]
        tickets = self.executor.submit(self.work, [units[p] for p in missing],
                                       lambda i, result: self.unit_cache.store(keys[missing[i]], result))
        self._pending[info.index] = (stage, keys, found, dict(zip(missing, tickets)), [unit.count for unit in units])
        if missing:
            self._first_batches.append((info, len(units[missing[0]].filters)))

    def trace_ahead(self) -> None:
        """When the units run in this process, trace the steps of the layers started so far in a
        background thread while the first ones climb (``AscentTrunk.trace_ahead``); ``close``
        stops it."""
        if self.executor.name == "local" and self._first_batches:
            self._tracing = self._trunk()
            self._tracing.trace_ahead(list(self._first_batches))

    def close(self) -> None:
        if self._tracing is not None:
            self._tracing.stop_tracing()
            self._tracing = None

    def _unit_key(self, info: LayerInfo, stage: str, unit: AscentUnit) -> str:
        payload = json.dumps([self._keys[info.index], stage, unit.filters, unit.count, unit.steps])
        return hashlib.sha256(payload.encode()).hexdigest()

    def _collect(self, info: LayerInfo, report: Callable[[int, int], None]) -> tuple[str, list[str], BatchResult]:
        """The layer's units joined; ``report(filters done, filters)`` as they arrive."""
        stage, keys, found, tickets, counts = self._pending.pop(info.index)
        total, cached = sum(counts), sum(count for count, result in zip(counts, found) if result is not None)
        sizes = [counts[position] for position in tickets]
        fresh = self.executor.results(list(tickets.values()),
                                      lambda done, _: report(cached + sum(sizes[:done]), total))
        for position, result in zip(tickets, fresh):
            found[position] = result
        return stage, keys, BatchResult.join(found)

    def entry(self, info: LayerInfo, report: Callable[[float, str], None]) -> MosaicEntry:
        """The layer's finished ascent: from the layer cache or its units (``report(share,
        detail)`` hears as they finish)."""
        if info.index in self._entries:
            return self._entries.pop(info.index)
        config = self.work.config
        count = mosaic_count(config, info)
        stage = self._pending[info.index][0]
        scan_work = 0.0
        if stage == "scan":
            steps = ascent_settings(config).step_count
            scan_count = scan_steps(steps)
            scan_work = info.filters * scan_count / (info.filters * scan_count + count * steps)
            _, scan_keys, scan = self._collect(info, _told(report, 0.0, scan_work, "scanning filters,"))
            chosen = [int(f) for f in np.argsort(-scan.activations, kind="stable")[:count]]
            self._submit(info, "climb", self._trunk().engine(info), chosen, steps)
        else:
            scan_keys = []
        _, climb_keys, result = self._collect(info, _told(report, scan_work, 1 - scan_work, "filters"))
        order = np.arange(len(result.filter_indices))
        if config.select == "top":
            order = np.argsort(-result.activations, kind="stable")  # the old Keras example's order
        engine = self._trunk().engine(info)
        entry = MosaicEntry(np.asarray(result.filter_indices, np.int64)[order], result.images[order],
                            result.activations[order], result.transformed[order], result.high_frequency[order],
                            engine.canvas_hw, None if engine.floor is None else np.asarray(engine.floor, np.float64))
        self.cache.store(self._keys[info.index], entry)
        for key in scan_keys + climb_keys:  # the layer's entry holds them now
            self.unit_cache.discard(key)
        return entry


def _told(report: Callable[[float, str], None], before: float, share: float, words: str) -> Callable[[int, int], None]:
    """Tell ``report`` after each unit but the last (the next step's start says that)."""
    return lambda done, total: report(before + share * done / total, f"{words} {done} of {total}") \
        if done < total else None


def draw_mosaic(entry: MosaicEntry, info: LayerInfo, slug: str, card_numbers: range, config: ReportConfig,
                root: str) -> MosaicPictures:
    """The layer's mosaic and each card's picture, and the filters' verdicts."""
    count = mosaic_count(config, info)
    settings = ascent_settings(config)
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
