"""Orchestration: load, inspect, gather every picture into a staging folder, write pages, swap.

Nothing is written into the user's output folder until the whole site exists in a staging
folder beside it; then the old site (only ever one this tool made) is swapped out in two renames.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__, paths, render
from .config import ReportConfig
from .errors import CnnvizError, LayerError, OutputDirError, SiteWriteError, UsageError
from .health import KernelFindings, LayerHealth, activation_findings, at_floor, floor_rule, kernel_findings
from .inspection import LayerInfo, ModelInfo, inspect_model
from .loading import InputImage, LoadedModel, demo_image_path, file_sha256, load_images, load_model
from .notes import Notes, read_notes
from .render import ImageAsset
from .units import unit_floor

MOSAIC_FILTERS = 64
ASCENT_JUDGE_STEPS = 10  # fewer steps than this cannot tell a dead filter from a slow one
FEATURE_GRID_CHANNELS = 64
CARD_TOP_IMAGES = 8  # a filter card shows the images that excite the filter most, at most this many
CARD_MAP_SIDE = 48  # their maps are kept (and drawn) at most this many pixels a side


# --------------------------------------------------------------------------- plain records


@dataclass(frozen=True)
class Progress:
    """Step ``step`` of ``total`` is starting; ``subject`` is a layer name (or "site").

    ``work_done`` is the estimated share (0..1) of the whole build's work done before this step:
    steps differ a thousandfold in cost (a filter grid against a deep layer's ascent), so an ETA
    must come from this, not from the step count.
    """

    step: int
    total: int
    subject: str
    phase: str
    work_done: float = 0.0


@dataclass(frozen=True)
class ImageReport:
    index: int
    name: str
    slug: str
    source: str
    sha256: str
    original: ImageAsset


@dataclass(frozen=True)
class FeatureAssets:
    """What one conv layer made of one image."""

    image_index: int
    grid: ImageAsset
    mean: ImageAsset
    belt: ImageAsset
    channels: int
    grid_channels: int
    constant_channels: int
    nonfinite_channels: int = 0


@dataclass(frozen=True)
class ImageStat:
    """One filter's response to one image: mean, max and the share of positions above zero."""

    image_index: int
    mean: float
    max: float
    active: float


@dataclass
class FilterCard:
    """Everything drawn for one filter; the layer page shows it at the anchor ``#f<number>``."""

    number: int
    kernel: ImageAsset
    ascent: ImageAsset | None = None
    ascent_activation: float | None = None
    ascent_dead: bool = False
    maps: ImageAsset | None = None
    top_images: tuple[ImageStat, ...] = ()  # the images in ``maps``, most excited first


@dataclass
class LayerReport:
    info: LayerInfo
    slug: str
    filters: ImageAsset | None = None
    filters_rgb: ImageAsset | None = None
    filters_depthwise: ImageAsset | None = None  # separable convs: the depthwise kernels the filters share
    filter_note: str = ""
    filters_shown: int = 0
    channels_shown: int = 0
    channels_total: int = 0
    nonfinite_filters: int = 0
    mosaic: ImageAsset | None = None
    mosaic_filters: int = 0
    mosaic_dead: tuple[int, ...] = ()
    ascent_judged: bool = True  # False: too few ascent steps to call a filter ascent-dead
    mosaic_indices: tuple[int, ...] = ()  # filter numbers in mosaic order
    mosaic_canvas: tuple[int, int] | None = None
    features: list[FeatureAssets] = field(default_factory=list)
    thumbnail: ImageAsset | None = None
    cards: list[FilterCard] = field(default_factory=list)
    # per image (rows) and output channel (columns): mean, max and active share of the map
    channel_mean: np.ndarray | None = None
    channel_min: np.ndarray | None = None
    channel_max: np.ndarray | None = None
    channel_active: np.ndarray | None = None
    kernel_findings: KernelFindings | None = None
    floor: np.ndarray | None = None  # per filter, the unit's floor (None: the response has none)
    health: LayerHealth | None = None
    failure: str | None = None  # with --keep-going: the phase and reason this layer could not be drawn
    _candidates: dict = field(default_factory=dict, repr=False)  # card filter -> [(mean, image, small map)]


@dataclass(frozen=True)
class Report:
    """Everything the pages show, as plain data."""

    title: str
    model: ModelInfo
    model_name: str
    model_source: str
    weights: str
    preprocess: str
    input_hw: tuple[int, int] | None
    input_channels: int | None
    layers: tuple[LayerReport, ...]
    images: tuple[ImageReport, ...]
    not_drawn: tuple[LayerInfo, ...]
    settings: dict
    skipped_images: tuple[tuple[str, str], ...] = ()  # (file, reason) with --keep-going
    free_size: bool = False  # the model takes any height and width; input_hw is the size used
    notes: Notes = Notes()
    version: str = __version__

    @property
    def failed_layers(self) -> tuple[LayerReport, ...]:
        """Layers that could not be drawn (only with --keep-going; otherwise the build stops)."""
        return tuple(layer for layer in self.layers if layer.failure is not None)


@dataclass(frozen=True)
class BuildResult:
    out_dir: str
    report: Report
    seconds: float
    phase_seconds: dict  # load, inspect, filters, feature maps, gradient ascent, pages
    cache_hits: int = 0
    cache_misses: int = 0
    site_bytes: int = 0
    single_file: str | None = None
    single_file_bytes: int = 0


# --------------------------------------------------------------------------- output folder


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([os.path.realpath(path), folder]) == folder


def _refuse_output(out: str, inputs: tuple[str, ...] = ()) -> None:
    """Refuse folders the tool did not make; only an empty folder or an old site may be replaced.

    Also refused, whatever they hold: /, the home folder, the current folder or one above it,
    a folder under version control, and a folder holding the build's own input files.
    """
    real = os.path.realpath(out)
    protected = (os.path.realpath(os.sep), os.path.realpath(os.path.expanduser("~")))
    if real in protected or _inside(os.getcwd(), real):
        raise OutputDirError(out, "refusing to write a site over this folder; name a new folder")
    if os.path.exists(real) and not os.path.isdir(real):
        raise OutputDirError(out, "exists and is not a folder")
    if os.path.exists(os.path.join(real, ".git")):
        raise OutputDirError(out, "is under version control (.git); build into a new folder and copy the site")
    for path in inputs:
        if os.path.exists(path) and _inside(path, real):
            raise OutputDirError(out, f"holds the input {path}; replacing the site would delete it")
    if os.path.isdir(real) and os.listdir(real):
        if not is_tool_site(real):
            raise OutputDirError(
                out,
                f"folder is not empty and holds no {paths.MARKER_FILE}, so it was not made by "
                "cnnviz_report; choose a new or empty folder",
            )


def is_tool_site(folder: str) -> bool:
    """True for a folder this tool built: its manifest.json names the tool (a web app's does not)."""
    if os.path.isfile(os.path.join(folder, paths.LEGACY_MARKER_FILE)):
        return True
    try:
        with open(os.path.join(folder, paths.MARKER_FILE), encoding="utf-8") as handle:
            return json.load(handle).get("tool") == "cnnviz_report"
    except (OSError, ValueError, AttributeError):
        return False


_LEFTOVER = re.compile(r"\.(?P<name>.+)\.cnnviz-(?:staging|old)-(?P<pid>\d+)")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(out: str) -> list[str]:
    """Delete staging/old folders of ``out`` left by builds that were killed; returns them.

    A build killed between its two renames leaves the previous site as ``.<name>.cnnviz-old-PID``
    and no ``out``: that folder is put back, not deleted.
    """
    parent, name = os.path.split(os.path.abspath(out))
    removed = []
    if not os.path.isdir(parent):
        return removed
    for entry in sorted(os.listdir(parent)):
        match = _LEFTOVER.fullmatch(entry)
        if match and match["name"] == name and not _process_alive(int(match["pid"])):
            path = os.path.join(parent, entry)
            if "-old-" in entry and not os.path.exists(os.path.join(parent, name)):
                os.rename(path, os.path.join(parent, name))
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(entry)
    return removed


def _staging_dir(out: str) -> str:
    parent, name = os.path.split(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".{name}.cnnviz-staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    return staging


def _swap_in(staging: str, out: str) -> None:
    """Two renames; if the second fails, the first is undone, so ``out`` is never missing."""
    out = os.path.abspath(out)
    if os.path.isdir(out):
        old = f"{os.path.dirname(out)}/.{os.path.basename(out)}.cnnviz-old-{os.getpid()}"
        os.rename(out, old)
        try:
            os.rename(staging, out)
        except BaseException:
            os.rename(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, out)


def _write_failure(out: str, error: OSError, staging: str | None) -> SiteWriteError:
    """One line for a write that failed: the reason, the file (relative to the site), the promise."""
    where = ""
    if error.filename and staging and str(error.filename).startswith(staging):
        where = f" (writing {os.path.relpath(str(error.filename), staging)})"
    reason = error.strerror or str(error)
    return SiteWriteError(out, f"cannot write the site: {reason}{where}; the previous site, if any, is untouched")


# --------------------------------------------------------------------------- gathering


def select_layers(model_info: ModelInfo, names: tuple[str, ...]) -> list[LayerInfo]:
    """The conv layers to draw: all of them, or those named (plain or path-qualified names)."""
    conv = list(model_info.conv_layers)
    if not names:
        return conv
    by_name = {}
    for layer in conv:
        by_name.setdefault(layer.name, layer)
        by_name[layer.qualified_name] = layer
    unknown = [n for n in names if n not in by_name]
    if unknown:
        listed = ", ".join(layer.qualified_name for layer in conv[:20]) + (" ..." if len(conv) > 20 else "")
        raise UsageError("--layers", f"no conv layer named {', '.join(unknown)} (conv layers: {listed})")
    wanted = {by_name[n].index for n in names}
    return [layer for layer in conv if layer.index in wanted]


def _image_reports(images: list[InputImage], root: str) -> list[ImageReport]:
    reports = []
    for image in images:
        slug = paths.image_slug(image.index, image.name)
        asset = render.save_png(image.original, root, paths.image_original(slug), f"input image {image.name}")
        reports.append(ImageReport(image.index, image.name, slug, image.source, file_sha256(image.source), asset))
    return reports


def _draw_filters(model, report: LayerReport, max_filters: int, root: str) -> None:
    from .analysis.weights import kernel_view

    view = kernel_view(model, report.info)
    grid = render.filter_grid(view.kernel, max_filters=max_filters)
    name = report.info.name
    report.filters = render.save_png(
        grid.image, root, paths.layer_asset(report.slug, "filters"),
        f"kernels of {name}: a row per filter, a column per input channel",
    )
    report.filters_shown, report.channels_shown = grid.filters_shown, grid.channels_shown
    report.channels_total, report.nonfinite_filters = grid.channels_total, grid.nonfinite_filters
    report.filter_note = view.note
    rgb = render.filter_rgb_grid(view.kernel, max_filters=max_filters)
    if rgb is not None:
        report.filters_rgb = render.save_png(
            rgb, root, paths.layer_asset(report.slug, "filters-rgb"), f"kernels of {name} as colour tiles"
        )
    if view.depthwise is not None:
        depthwise = render.filter_grid(view.depthwise, max_filters=max_filters)
        report.filters_depthwise = render.save_png(
            depthwise.image, root, paths.layer_asset(report.slug, "filters-depthwise"),
            f"depthwise kernels of {name}: one row per input channel (times the depth multiplier)")
    report.kernel_findings = kernel_findings(view.kernel)
    unit, _ = render.unit_range(view.kernel)
    first_kernels = []
    for number in range(grid.filters_shown):
        card = render.kernel_card(unit[..., number], view.kernel[..., number])
        report.cards.append(FilterCard(number, render.save_png(
            card, root, paths.filter_asset(report.slug, number, "kernel"),
            f"kernel of filter {number} of {name}, one cell per input channel")))
        first_kernels += [render.kernel_card(unit[..., number], view.kernel[..., number], 1)] if number < 4 else []
    report.thumbnail = render.save_png(render.thumbnail(first_kernels), root, paths.layer_asset(report.slug, "thumb"),
                                       f"the first kernels of {name}")


def _record_stats(report: LayerReport, image_index: int, fmap: np.ndarray) -> None:
    """Per-channel numbers for the health table, and the small maps the filter cards may show."""
    values = np.asarray(fmap, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        mean, peak, active = values.mean(axis=(0, 1)), values.max(axis=(0, 1)), (values > 0).mean(axis=(0, 1))
        low = values.min(axis=(0, 1))
    for attribute, row in (("channel_mean", mean), ("channel_min", low), ("channel_max", peak),
                           ("channel_active", active)):
        table = getattr(report, attribute)
        setattr(report, attribute, row[None] if table is None else np.vstack([table, row[None]]))
    for card in report.cards:
        if card.number >= values.shape[-1]:  # a separable layer's depthwise kernels outnumber its outputs
            continue
        kept = report._candidates.setdefault(card.number, [])
        kept.append((float(mean[card.number]), image_index, render.shrink_map(fmap[:, :, card.number], CARD_MAP_SIDE)))
        kept.sort(key=lambda item: (-item[0] if np.isfinite(item[0]) else np.inf, item[1]))
        del kept[CARD_TOP_IMAGES:]


def _draw_card_maps(report: LayerReport, images: dict[int, "ImageReport"], root: str) -> None:
    """Each card's strip: its filter on the images that excite it most, on one shared scale."""
    for card in report.cards:
        kept = report._candidates.get(card.number, [])
        if not kept:
            continue
        stats = tuple(ImageStat(index, mean, float(report.channel_max[index, card.number]),
                                float(report.channel_active[index, card.number])) for mean, index, _ in kept)
        labels = [f"#{s.image_index + 1} {s.mean:.3g}" for s in stats]
        card.maps = render.save_png(
            render.map_strip([m for _, _, m in kept], labels), root, paths.filter_asset(report.slug, card.number, "maps"),
            f"filter {card.number} of {report.info.name} on the {len(kept)} images that excite it most")
        card.top_images = stats
    report._candidates.clear()


def _draw_features(report: LayerReport, image: ImageReport, fmap: np.ndarray, root: str) -> None:
    name = report.info.name
    _record_stats(report, image.index, fmap)
    grid = render.feature_grid(fmap, FEATURE_GRID_CHANNELS)
    strip = render.belt(fmap)
    report.features.append(
        FeatureAssets(
            image_index=image.index,
            grid=render.save_png(
                grid.image, root, paths.layer_asset(report.slug, "fmaps", image.slug),
                f"first {grid.channels_shown} feature maps of {name} for {image.name}",
            ),
            mean=render.save_png(
                render.mean_map(fmap), root, paths.layer_asset(report.slug, "mean", image.slug),
                f"mean feature map of {name} for {image.name}",
            ),
            belt=render.save_png(
                strip.image, root, paths.layer_asset(report.slug, "belt", image.slug),
                f"all {strip.channels} standardised channels of {name} for {image.name}",
            ),
            channels=strip.channels,
            grid_channels=grid.channels_shown,
            constant_channels=strip.constant_channels,
            nonfinite_channels=strip.nonfinite_channels,
        )
    )


def _ascent_settings(config: ReportConfig):
    from .analysis.ascent import AscentSettings

    return AscentSettings(mode=config.ascent_mode, steps=config.ascent_steps,
                          learning_rate=config.ascent_learning_rate, seed=config.seed)


def _mosaic_count(config: ReportConfig, info: LayerInfo) -> int:
    if config.ascent_steps == 0:
        return 0
    return min(MOSAIC_FILTERS, config.max_filters, info.filters or 0)


def _unit_end(model_info: ModelInfo, info: LayerInfo) -> LayerInfo:
    """The last layer of ``info``'s unit (the conv itself when the unit is its raw output)."""
    if not info.unit_layers:
        return info
    return next(layer for layer in model_info.layers
                if layer.path == info.path and layer.name == info.unit_layers[-1] and layer.index > info.index)


def _upstream(model_info: ModelInfo, info: LayerInfo) -> list[LayerInfo]:
    """The conv layers up to and including ``info`` in walk order (what its ascent pays for)."""
    return [layer for layer in model_info.conv_layers if layer.index <= info.index]


def _ascend(loaded: LoadedModel, model_info: ModelInfo, info: LayerInfo, config: ReportConfig, count: int) -> dict:
    """The mosaic's filters, pictures and activations; --select top scans every filter first."""
    from .analysis.ascent import LayerAscent

    settings = _ascent_settings(config)
    engine = LayerAscent(loaded.model, info, _upstream(model_info, info), loaded.input_hw, loaded.channels, loaded.preprocess,
                         settings, loaded.channels_first)
    chosen = list(range(count))
    if config.select == "top" and (info.filters or 0) > count:
        scan = engine.run(list(range(info.filters)), steps=max(1, settings.step_count // 4))
        chosen = [int(f) for f in np.argsort(-scan.activations, kind="stable")[:count]]
    result = engine.run(chosen)
    order = np.arange(len(chosen))
    if config.select == "top":
        order = np.argsort(-result.activations, kind="stable")  # the old Keras example's order
    return {
        "filter_indices": np.asarray(result.filter_indices, np.int64)[order],
        "images": result.images[order],
        "activations": result.activations[order],
        "canvas": np.asarray(result.canvas_hw, np.int64),
        "floor": np.asarray([] if engine.floor is None else engine.floor, np.float64),
    }


def _draw_mosaic(loaded, model_info, report: LayerReport, config: ReportConfig, root: str, cache, digests) -> None:
    from .cache import ascent_key

    info = report.info
    count = _mosaic_count(config, info)
    if count == 0:
        return
    settings = _ascent_settings(config)
    key = ascent_key(digests[_unit_end(model_info, info).index], info, {
        "mode": settings.mode, "steps": settings.step_count, "rate": settings.rate, "seed": settings.seed,
        "rescue_stuck": settings.rescue_stuck, "canvas": (settings.min_canvas, settings.max_canvas),
        "select": config.select, "count": count, "input_hw": loaded.input_hw,
        "channels": loaded.channels, "channels_first": loaded.channels_first, "preprocess": loaded.preprocess_mode,
        "unit": info.unit_layers, "noise": settings.noise_amplitude,
    })
    entry = cache.load(key)
    if entry is None:
        entry = _ascend(loaded, model_info, info, config, count)
        cache.store(key, entry)
    filters = [int(f) for f in entry["filter_indices"]]
    activations = [float(a) for a in entry["activations"]]
    floor = entry["floor"] if len(entry["floor"]) else None
    judged = settings.step_count >= ASCENT_JUDGE_STEPS
    dead = tuple(f for f, a in zip(filters, activations)
                 if judged and floor is not None and np.isfinite(a) and at_floor(a, floor[f]))
    broken = {f for f, a in zip(filters, activations) if not np.isfinite(a)}  # NaN/Inf upstream
    labels = [f"{f} nan" if f in broken else f"{f} dead" if f in dead else f"{f}  {a:.3g}"
              for f, a in zip(filters, activations)]
    image = render.mosaic(entry["images"], labels, [f in dead or f in broken for f in filters])
    which = "most activated" if config.select == "top" else "first"
    report.mosaic = render.save_png(
        image, root, paths.layer_asset(report.slug, "mosaic"),
        f"gradient-ascent images of the {which} {count} filters of {info.name}",
    )
    report.mosaic_filters, report.mosaic_dead, report.mosaic_indices = count, dead, tuple(filters)
    report.ascent_judged = judged
    report.mosaic_canvas = tuple(int(v) for v in entry["canvas"])
    cards = {card.number: card for card in report.cards}
    for position, (number, activation) in enumerate(zip(filters, activations)):
        if number in cards:
            cards[number].ascent = render.save_png(
                render.scale_tile(render.display_tile(entry["images"][position]), 128), root,
                paths.filter_asset(report.slug, number, "ascent"), f"gradient-ascent image of filter {number}")
            cards[number].ascent_activation = activation
            cards[number].ascent_dead = number in dead or number in broken
    tiles = [render.display_tile(picture) for picture in entry["images"][:4]]
    report.thumbnail = render.save_png(render.thumbnail(tiles), root, paths.layer_asset(report.slug, "thumb"),
                                       f"the first gradient-ascent images of {info.name}")


def _batches(images: list[InputImage], size: int):
    for start in range(0, len(images), size):
        yield images[start : start + size]


class _Clock:
    """Seconds spent per phase."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def add(self, phase: str, started: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + time.monotonic() - started


def _guarded(report: LayerReport, phase: str, keep_going: bool, work: Callable[[], None]) -> None:
    """Run one layer's ``work``; an unexpected error names the layer (or, with --keep-going, is kept
    on the layer's page and the layer's later phases are skipped)."""
    if report.failure is not None:
        return
    try:
        work()
    except (CnnvizError, OSError):  # already one line (or a write failure, reported for the whole site)
        raise
    except Exception as error:
        reason = f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"
        if not keep_going:
            raise LayerError(report.info.qualified_name,
                             f"{report.info.type_name} layer failed while drawing its {phase}: {reason} "
                             "(--debug shows the traceback; --keep-going builds the other layers)") from error
        report.failure = f"{phase}: {reason}"


def _gather(loaded, model_info, selected, images, image_reports, config, root, notify, clock, cache) -> list[LayerReport]:
    from .analysis.activations import FeatureProbe
    from .cache import weights_digests

    reports = [LayerReport(info, paths.layer_slug(info.index, info.name)) for info in selected]
    image_layers = [r for r in reports if r.info.takes_images and loaded.input_hw is not None]
    started = time.monotonic()
    for report in reports:
        notify(report.info.qualified_name, "filters")
        _guarded(report, "filters", config.keep_going,
                 lambda report=report: _draw_filters(loaded.model, report, config.max_filters, root))
        if report.info.takes_images:
            _guarded(report, "unit floor", config.keep_going,
                     lambda report=report: setattr(report, "floor", unit_floor(loaded.model, report.info)))
    clock.add("filters", started)
    started = time.monotonic()
    if images and image_layers:
        probe = FeatureProbe(loaded.model, [r.info for r in image_layers])
        for batch in _batches(images, config.image_batch_size):
            pixels = np.stack([image.pixels for image in batch])
            model_input = np.asarray(loaded.preprocess(pixels), dtype=np.float32)
            if loaded.channels_first:
                model_input = np.moveaxis(model_input, -1, 1)
            maps = probe(model_input)
            for report in image_layers:
                notify(report.info.qualified_name, f"feature maps, images {batch[0].index + 1}-{batch[-1].index + 1}")
                for position, image in enumerate(batch):
                    _guarded(report, "feature maps", config.keep_going,
                             lambda report=report, image=image, position=position: _draw_features(
                                 report, image_reports[image.index], maps[report.info.index][position], root))
            del maps
    clock.add("feature maps", started)
    started = time.monotonic()
    if any(_mosaic_count(config, r.info) for r in image_layers):
        digests = weights_digests(loaded.model, model_info.layers)
        for report in image_layers:
            notify(report.info.qualified_name, "gradient ascent")
            _guarded(report, "gradient ascent", config.keep_going,
                     lambda report=report: _draw_mosaic(loaded, model_info, report, config, root, cache, digests))
    clock.add("gradient ascent", started)
    started = time.monotonic()
    by_index = {image.index: image for image in image_reports}
    for report in reports:
        _guarded(report, "filter cards", config.keep_going, lambda report=report: _finish_layer(report, by_index, root))
    clock.add("filter cards", started)
    return reports


def _finish_layer(report: LayerReport, images: dict[int, ImageReport], root: str) -> None:
    """The cards' image strips and the layer's health verdicts, from what the phases recorded."""
    _draw_card_maps(report, images, root)
    dead, constant = activation_findings(report.channel_min, report.channel_max, report.floor)
    report.health = LayerHealth(report.info.filters or 0, report.kernel_findings,
                                0 if report.channel_max is None else len(report.channel_max),
                                dead, constant, tuple(sorted(report.mosaic_dead)), floor_rule(report.floor),
                                report.ascent_judged)


def _settings(config: ReportConfig) -> dict:
    settings = asdict(config)
    settings["images"] = list(config.images)
    settings["layers"] = list(config.layers)
    settings.pop("out")
    return settings


def _versions() -> dict:
    import platform

    import keras
    import PIL
    import tensorflow

    return {"cnnviz_report": __version__, "python": platform.python_version(), "tensorflow": tensorflow.__version__,
            "keras": keras.__version__, "numpy": np.__version__, "pillow": PIL.__version__}


def _write_manifest(report: Report, loaded: LoadedModel, root: str, phase_seconds: dict) -> None:
    """manifest.json: what was built from what, with which versions and settings, and how long it took."""
    manifest = {
        "tool": "cnnviz_report",
        "version": report.version,
        "versions": _versions(),
        "model": {"name": report.model_name, "source": report.model_source, "weights": report.weights,
                  "file_sha256": loaded.file_sha256},
        "images": [{"name": i.name, "sha256": i.sha256, "page": paths.image_page(i.slug)} for i in report.images],
        "layers": [{"name": r.info.qualified_name, "page": paths.layer_page(r.slug),
                    "health": r.health.counts if r.health else {}, "failure": r.failure} for r in report.layers],
        "settings": report.settings,
        "seconds_per_phase": {phase: round(seconds, 3) for phase, seconds in phase_seconds.items()},
        "skipped_images": [{"file": name, "reason": reason} for name, reason in report.skipped_images],
        "failed_layers": [{"name": r.info.qualified_name, "type": r.info.type_name, "reason": r.failure}
                          for r in report.failed_layers],
    }
    with open(os.path.join(root, paths.MARKER_FILE), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
        handle.write("\n")


def _write_text(root: str, site_path: str, text: str) -> None:
    with open(os.path.join(root, site_path), "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def _folder_bytes(folder: str) -> int:
    return sum(os.path.getsize(os.path.join(top, name)) for top, _, names in os.walk(folder) for name in names)


DRAWING_COST = 2e10  # a picture's drawing and PNG writing, in FLOP-equivalents (~0.3 s here)


def _step_costs(model_info: ModelInfo, selected: list[LayerInfo], n_images: int, config: ReportConfig,
                input_hw: tuple[int, int] | None) -> dict[tuple[str, str], float]:
    """Estimated cost of each (qualified layer name, phase) step, in FLOP-equivalents.

    A forward pass costs about the layer's FLOPs per image; an ascent costs the engine's own
    estimate of a step (LayerCost.step_flops) per filter and step, on the planned canvas.
    """
    from .analysis.ascent import LayerCost, plan_canvas

    image_layers = [layer for layer in selected if layer.takes_images] if input_hw else []
    costs: dict[tuple[str, str], float] = {}
    for layer in selected:
        costs[(layer.qualified_name, "filters")] = DRAWING_COST
    for start in range(0, n_images, config.image_batch_size):
        batch = min(config.image_batch_size, n_images - start)
        phase = f"feature maps, images {start + 1}-{start + batch}"
        for layer in image_layers:
            costs[(layer.qualified_name, phase)] = batch * (layer.flops + 3 * DRAWING_COST)
    settings = _ascent_settings(config)
    for layer in image_layers:
        filters = _mosaic_count(config, layer)
        if filters:
            if config.select == "top":
                filters += (layer.filters or 0) / 4.0  # the brief scan of every filter
            step = LayerCost.of(_upstream(model_info, layer), input_hw).step_flops(
                plan_canvas(layer, input_hw, True, settings))
            costs[(layer.qualified_name, "gradient ascent")] = settings.step_count * filters * step
    costs[("site", "pages")] = DRAWING_COST
    return costs


def build_site(config: ReportConfig, progress: Callable[[Progress], None] | None = None) -> BuildResult:
    """Build the whole report for ``config`` into ``config.out``; silent unless given ``progress``."""
    from .cache import AscentCache, default_cache_dir

    build_started = started = time.monotonic()
    clock = _Clock()
    config.validate()
    remove_leftovers(config.out)
    _refuse_output(config.out, config.images + tuple(p for p in (config.model, config.notes, config.single_file) if p))
    if config.single_file:
        from .single_file import check_target

        check_target(config.single_file)
    loaded = load_model(config)
    image_args = config.images or ((demo_image_path(),) if config.model is None else ())
    if image_args and loaded.input_hw is None:
        raise UsageError("--images", f"{loaded.name} does not take 2-D images (input {loaded.model.inputs[0].shape})")
    images, skipped = (load_images(image_args, loaded.input_hw, loaded.channels, config.keep_going)
                       if image_args else ([], []))
    clock.add("load", started)
    started = time.monotonic()
    model_info = inspect_model(loaded.model)
    if config.unit == "raw":  # every picture and verdict from the conv layer's own output
        model_info = replace(model_info, layers=tuple(replace(layer, unit_layers=()) for layer in model_info.layers))
    selected = select_layers(model_info, config.layers)
    notes = read_notes(config.notes, {name for layer in selected for name in (layer.name, layer.qualified_name)})
    clock.add("inspect", started)
    cache = AscentCache(Path(config.cache_dir) if config.cache_dir else default_cache_dir()) if config.use_cache \
        else AscentCache(None)

    costs = _step_costs(model_info, selected, len(images), config, loaded.input_hw)
    total_cost = sum(costs.values()) or 1.0
    done = {"steps": 0, "cost": 0.0}

    def notify(subject: str, phase: str) -> None:
        done["steps"] += 1
        if progress is not None:
            progress(Progress(done["steps"], len(costs), subject, phase, done["cost"] / total_cost))
        done["cost"] += costs.get((subject, phase), DRAWING_COST)

    staging = None
    try:
        staging = _staging_dir(config.out)
        image_reports = _image_reports(images, staging)
        layers = _gather(loaded, model_info, selected, images, image_reports, config, staging, notify, clock, cache)
        report = Report(
            title=config.title or f"{loaded.name}: what the convolution layers see",
            model=model_info,
            model_name=loaded.name,
            model_source=loaded.source,
            weights=loaded.weights_label,
            preprocess=loaded.preprocess_mode,
            input_hw=loaded.input_hw,
            input_channels=loaded.channels,
            free_size=loaded.free_size,
            layers=tuple(layers),
            images=tuple(image_reports),
            not_drawn=tuple(layer for layer in selected if not layer.takes_images),
            settings=_settings(config),
            skipped_images=tuple((error.subject, error.reason) for error in skipped),
            notes=notes,
        )
        notify("site", "pages")
        from .site import write_site

        started = time.monotonic()
        from .summary import health_csv, summary_markdown

        write_site(report, staging)
        _write_text(staging, paths.SUMMARY_FILE, summary_markdown(report))
        _write_text(staging, paths.HEALTH_FILE, health_csv(report))
        clock.add("pages", started)
        _write_manifest(report, loaded, staging, clock.seconds)
        site_bytes = _folder_bytes(staging)
        _swap_in(staging, config.out)
    except OSError as error:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
        raise _write_failure(config.out, error, staging) from error
    except BaseException:
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    single_bytes = 0
    if config.single_file:
        from .single_file import write_single_file

        started = time.monotonic()
        try:
            single_bytes = write_single_file(report, config.out, config.single_file, config.single_file_images)
        except OSError as error:
            raise SiteWriteError(config.single_file, f"cannot write the single-file report: "
                                 f"{error.strerror or error}; the site itself was built") from error
        clock.add("single file", started)
    return BuildResult(os.path.abspath(config.out), report, time.monotonic() - build_started,
                       clock.seconds, cache.hits, cache.misses, site_bytes,
                       os.path.abspath(config.single_file) if config.single_file else None, single_bytes)
