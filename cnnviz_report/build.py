"""Orchestration: a build is a list of named phases; each returns plain records for the next.

check -> load -> inspect -> plan -> (in a staging folder) images -> kernels -> responses ->
[first look: every page, swapped in] -> dataset examples -> mosaics, a layer at a time [each
layer's pages replaced as it lands] -> explanations -> every page, summary.md, health.csv ->
manifest [-> swap in, with --no-stream] -> single file. ``publishing.py`` decides where the
files go; the phases draw into whichever folder it names.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from . import paths
from .analysis.ascent import BatchResult
from .analysis.framework import backend_and_device
from .cache import AscentCache, ResultCache, dataset_key, default_cache_dir
from .config import ReportConfig
from .datasets import Dataset, list_dataset
from .errors import CnnvizError, LayerError, SiteWriteError, UsageError
from .executors import make_executor, process_state
from .layers import LayerInfo, ModelInfo
from .loading import InputImage, LoadedModel, demo_image_path, load_images
from .analysis.model_loading import load_model
from .manifest import write_manifest
from .notes import read_notes
from .phases.combine import layer_report
from .phases.images import draw_images
from .phases.kernels import draw_kernels
from .phases.mosaics import (AscentWork, MosaicClimber, ascent_costs, ascent_settings, ascent_work, draw_mosaic,
                             unit_end)
from .phases.attribution import Explainer, climb_uncarded, no_class_note, resolve_class
from .phases.predictions import ClassOutput, class_names, class_output, predict
from .phases.responses import ResponseCollector
from .phases.dataset_examples import (DatasetWork, InputCache, LayerExamples, ShardExamples, draw_examples,
                                      draw_pictures, merge_examples, plan_shards)
from .progress import (ASCENT, ATTRIBUTION, DATASET, EXAMPLES, IMAGES, INPUTS, KERNELS, PAGES, SITE, Progress,
                       StepTracker, dataset_costs, feature_phase, image_batches, plan_steps)
from .records import BuildResult, BuildState, DatasetSummary, ImageReport, LayerReport, Report
from .single_file import check_target, write_single_file
from .stages import choose_layers
from .site import write_site
from .publishing import PublishedSite
from .staging import check_output_folder, folder_bytes, write_text
from .summary import attribution_json, health_csv, summary_markdown


class PhaseClock:
    """Seconds spent per named phase (shown by the CLI and kept in the manifest)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str):
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - started


def build_site(config: ReportConfig, progress: Callable[[Progress], None] | None = None,
               executor=None, first_look: Callable[[Report], None] | None = None) -> BuildResult:
    """Build the whole report for ``config`` into ``config.out``; silent unless given ``progress``.
    The units of work run on ``executor`` (default: the one ``config.executor`` names, made and
    closed here). A streamed build calls ``first_look(report)`` once its first look is published
    (``report.state`` says what is still being drawn)."""
    dataset = _check_request(config)
    if executor is not None:
        return _build(config, progress, executor, dataset, first_look)
    executor = make_executor(config.executor, config.ray_address)
    try:
        return _build(config, progress, executor, dataset, first_look)
    finally:
        executor.close()


def _build(config: ReportConfig, progress: Callable[[Progress], None] | None, executor,
           dataset: Dataset | None, first_look: Callable[[Report], None] | None = None) -> BuildResult:
    started, clock = time.monotonic(), PhaseClock()
    with clock.phase("load"):
        loaded = load_model(config)
        if config.input_size and loaded.input_hw != tuple(config.input_size):  # input_size_if_free, and the model
            config = replace(config, input_size=None)  # did not take it: its report says it was built at its own
        images, skipped = _read_images(config, loaded)
        _check_dataset_input(dataset, loaded)
        classes = _classes(loaded, config)
    with clock.phase("inspect"):
        model_info, selected, stages, unpicked, notes = _inspect(config, loaded)
    image_layers = [info for info in selected if info.takes_images and loaded.input_hw is not None]
    ascents = ascent_costs(model_info, image_layers, config, loaded.input_hw) if image_layers else {}
    model_flops = sum(layer.flops for layer in model_info.conv_layers)
    tracker = StepTracker(plan_steps(selected, image_layers, ascents, len(images), config, model_flops,
                                     len(dataset.items) if dataset else 0), progress)
    cache_root = (config.cache_dir or default_cache_dir()) if config.use_cache else None
    place = Workplace("", executor, cache_root, AscentCache(cache_root), ResultCache(cache_root, "units", BatchResult))

    def write(report: Report, root: str, pages: Callable[[str], bool] | None) -> None:
        write_site(report, root, pages)
        write_text(root, paths.SUMMARY_FILE, summary_markdown(report))
        write_text(root, paths.HEALTH_FILE, health_csv(report))
        write_text(root, paths.ATTRIBUTION_FILE, attribution_json(report))
        if report.state is not None:  # the whole report's manifest is written last, with every phase's time
            write_manifest(report, loaded.file_sha256, root, clock.seconds, loaded.libraries)

    site = PublishedSite(config.out, config.outside_files, config.stream, write)
    latest: list[Report] = []  # the state last published, for the words a stopped build leaves

    def report_of(drawing: LayerDrawing, image_reports: list[ImageReport], state: BuildState | None) -> Report:
        """The report as drawn so far (``state`` says what is not), or the whole one (None)."""
        report = Report(
            title=config.title or f"{loaded.name}: what the convolution layers see", model=model_info,
            model_name=loaded.name, model_source=loaded.source, weights=loaded.weights_label,
            preprocess=loaded.preprocess_mode, preprocess_reason=loaded.preprocess_reason, input_hw=loaded.input_hw,
            input_channels=loaded.channels, free_size=loaded.free_size, layers=tuple(drawing.reports()),
            images=tuple(image_reports), not_drawn=tuple(layer for layer in selected if not layer.takes_images),
            settings=_settings(config), skipped_images=tuple((error.subject, error.reason) for error in skipped),
            notes=notes, dataset=drawing.summary, stages=stages, unpicked_stages=unpicked, state=state)
        if state is not None:
            latest[:] = [report]
        return report

    def state(drawing: LayerDrawing, explained: bool, step_done: bool = False) -> BuildState:
        left = tracker.seconds_left(step_done)
        return BuildState(
            waiting=tuple(info.index for info in image_layers if info.index in ascents and not drawing.landed(info)),
            examples_waiting=dataset is not None and bool(image_layers) and drawing.summary is None,
            explanations_waiting=explained, left=_minutes_left(left) if left is not None else "",
            written=time.strftime("%H:%M UTC", time.gmtime()))

    try:
        root = site.root
        image_reports = _draw_images(loaded, images, classes, config, root, tracker)
        drawing = LayerDrawing(loaded, model_info, selected, image_layers, ascents, config, tracker, clock)
        drawing.first_look(images, image_reports, root)
        explains = bool(images and image_layers and config.explain)
        if config.stream:
            shown = report_of(drawing, image_reports, state(drawing, explains))
            site.first_look(shown)
            if first_look is not None:
                first_look(shown)
        root = site.root
        place = replace(place, root=root)
        if dataset is not None and image_layers:
            drawing.dataset_examples(dataset, place)
            if config.stream:
                site.update(report_of(drawing, image_reports, state(drawing, explains)), None)

        def landed(info: LayerInfo) -> None:  # its pages (the layer page and its pages of cards), and the index
            if config.stream:
                prefix = f"layers/{drawing.slugs[info.index]}"
                site.update(report_of(drawing, image_reports, state(drawing, explains, step_done=True)),
                            lambda path: path == paths.INDEX_PAGE or path.startswith(prefix))
        drawing.climb(place, landed)
        layers, work = drawing.reports(), drawing.work
        if explains:
            tracker.advance(INPUTS, ATTRIBUTION)
            with clock.phase("attribution"):
                image_reports, layers = _explain(loaded, classes, work, image_layers, layers, images, image_reports,
                                                 config, root)
            drawing.gradcams = {layer.info.index: layer.gradcams for layer in layers}
        tracker.advance(SITE, PAGES)
        with clock.phase("pages"):
            report = report_of(drawing, image_reports, None)
            site.finish(report)
        site.seal(lambda root: write_manifest(report, loaded.file_sha256, root, clock.seconds, loaded.libraries))
    except BaseException as error:
        site.abandon(replace(latest[0], state=replace(latest[0].state, stopped=_stop_reason(error)))
                     if latest else None)
        if isinstance(error, OSError):
            raise site.failure(error) from error
        raise
    root = site.root
    site_bytes = folder_bytes(root)
    single_bytes = _write_single_file(config, report, clock) if config.single_file else 0
    return BuildResult(os.path.abspath(config.out), report, time.monotonic() - started, clock.seconds,
                       place.cache.hits, place.cache.misses, place.cache.write_errors, site_bytes,
                       os.path.abspath(config.single_file) if config.single_file else None, single_bytes,
                       place.unit_cache.hits, place.unit_cache.misses)


def _minutes_left(seconds: float) -> str:
    """``about 12 min left``; under a minute, ``less than a minute left``."""
    if seconds < 60:
        return "less than a minute left"
    return f"about {round(seconds / 60)} min left"


def _stop_reason(error: BaseException) -> str:
    """Why a build ended before its end, in a few words for the pages."""
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    if isinstance(error, SystemExit):
        return "terminated"
    words = " ".join(str(error).split())[:200]
    return f"{type(error).__name__}: {words}" if words else type(error).__name__


def _settings(config: ReportConfig) -> dict:
    """The config's settings, with the ascent's steps and step size as used (not None for default),
    the precision the steps computed in, and the backend and device that ran the report (the
    process's: Keras fixes it per process)."""
    ascent = ascent_settings(config)
    return dict(config.settings, ascent_steps=ascent.step_count if config.ascent_steps != 0 else 0,
                ascent_learning_rate=ascent.rate, ascent_precision=ascent.precision, backend=backend_and_device())


def _check_request(config: ReportConfig) -> Dataset | None:
    """Every check that needs no model, before the slow loading: options, output folder, target;
    and the data set's list (a missing file it names stops the build here): the listed data set."""
    config.validate()
    check_output_folder(config.out, config.outside_files)
    if config.single_file:
        check_target(config.single_file)
    return list_dataset(config.dataset, config.keep_going) if config.dataset else None


def _read_images(config: ReportConfig, loaded: LoadedModel):
    image_args = config.images or ((demo_image_path(),) if config.model is None else ())
    if not image_args:
        return [], []
    if loaded.input_hw is None:
        raise UsageError("--images", f"{loaded.name} does not take 2-D images (input {loaded.walk.input_shapes()[0]})")
    return load_images(image_args, loaded.input_hw, loaded.channels, config.keep_going)


def _check_dataset_input(dataset: Dataset | None, loaded: LoadedModel) -> None:
    if dataset is not None and loaded.input_hw is None:
        raise UsageError("--dataset", f"{loaded.name} does not take 2-D images (input {loaded.walk.input_shapes()[0]})")


def _classes(loaded: LoadedModel,
             config: ReportConfig) -> tuple[tuple[str, ...] | None, int | None, ClassOutput] | None:
    """(the names of the model's classes, the class ``--class`` asks for, how the output reads as
    classes), or None for a model without class scores; read and checked before any drawing, so
    a wrong --labels file or --class stops the build at once."""
    output = class_output(loaded, config.labels)
    if output is None:
        return None
    names = class_names(loaded, output, config.labels)
    return names, resolve_class(config.target_class, names, output.classes), output


def _draw_images(loaded: LoadedModel, images: list[InputImage], classes, config: ReportConfig, root: str,
                 tracker: StepTracker) -> list[ImageReport]:
    """The images' pictures, each with the model's top predictions for it (``classes``: ``_classes``)."""
    if not images:
        return []
    tracker.advance(INPUTS, IMAGES)
    predictions = predict(loaded, images, config.image_batch_size, classes[0], classes[2]) if classes else {}
    return [replace(report, predictions=predictions.get(report.index, ())) for report in draw_images(images, root)]


def _explain(loaded: LoadedModel, classes, work: AscentWork | None, image_layers: list[LayerInfo],
             layers: list[LayerReport], images: list[InputImage], image_reports: list[ImageReport],
             config: ReportConfig, root: str):
    """Each image's Grad-CAM and deciding units (its ``attribution``, or a note saying why there
    is none), and each layer's Grad-CAM per image (its ``gradcams``). A deciding unit without a
    card gets its ascent picture here, from the mosaics' engines (``work``: none when the build
    climbs nothing)."""
    if classes is None:
        note = no_class_note(loaded)
        return [replace(report, attribution_note=note) for report in image_reports], layers
    names, requested, output = classes
    explained = {info.index for info in image_layers}
    drawn = {layer.info.index: layer for layer in layers if layer.info.index in explained}
    try:
        explainer = Explainer(loaded, image_layers, {index: layer.slug for index, layer in drawn.items()},
                              {index: len(layer.cards) for index, layer in drawn.items()}, names, requested, output)
    except ValueError as error:  # a graph the replay cannot reach from a fresh input: the section is left out
        note = f"No explanation for {loaded.name}: {error}."
        return [replace(report, attribution_note=note) for report in image_reports], layers
    found = explainer.explain(images, image_reports, config.image_batch_size, root)
    if work is not None:
        infos = {info.index: info for info in image_layers}
        # this process's engines of the mosaic phase (traced already, when the units ran here)
        found = climb_uncarded(found, lambda index: process_state(work.key, lambda: work)[1].engine(infos[index]),
                               explainer.slugs, root)
    image_reports = [replace(report, attribution=found.get(report.index)) for report in image_reports]
    layers = [replace(layer, gradcams=tuple(explainer.layer_cams.get(layer.info.index, ()))) for layer in layers]
    return image_reports, layers


def _inspect(config: ReportConfig, loaded: LoadedModel):
    """The model's layers, the conv layers to draw (``--layers``, then ``--per-stage``), the model's
    stages and those that gave no layer, and the notes checked against the names drawn."""
    model_info = loaded.walk.inspect()
    if config.unit == "raw":  # every picture and verdict from the conv layer's own output
        model_info = replace(model_info, layers=tuple(replace(layer, unit_layers=()) for layer in model_info.layers))
    selected, stages, unpicked = choose_layers(model_info, config.layers, config.per_stage)
    notes = read_notes(config.notes, {name for layer in selected for name in (layer.name, layer.qualified_name)})
    return model_info, selected, stages, unpicked, notes


@dataclass(frozen=True)
class Workplace:
    """Where a build's work runs and lands: the site folder being written, the executor that runs
    units of work (here or on Ray), and the caches that keep what finished."""

    root: str
    executor: object
    cache_root: str | None
    cache: AscentCache  # finished mosaics
    unit_cache: ResultCache  # finished units of work of a build under way


class LayerDrawing:
    """Every selected layer's pictures, phase by phase (filters, feature maps, data-set examples,
    gradient ascent), kept as the phases leave them so that a report can be made at any point:
    a streamed build publishes one after the feature maps and one as each layer's ascent lands."""

    def __init__(self, loaded: LoadedModel, model_info: ModelInfo, selected: list[LayerInfo],
                 image_layers: list[LayerInfo], ascents: dict[int, float], config: ReportConfig,
                 tracker: StepTracker, clock: PhaseClock):
        self.loaded, self.model_info, self.selected, self.image_layers = loaded, model_info, selected, image_layers
        self.ascents, self.config, self.tracker, self.clock = ascents, config, tracker, clock
        self.slugs = {info.index: paths.layer_slug(info.index, info.name) for info in selected}
        self.failures: dict[int, str] = {}
        self.kernels, self.floors, self.responses, self.mosaics, self.examples = {}, {}, {}, {}, {}
        self.gradcams: dict[int, tuple] = {}  # the explanations' Grad-CAMs, per layer
        self.summary: DatasetSummary | None = None
        self.work: AscentWork | None = None  # the ascents' work (its engines serve the explanations too)
        self.digests = loaded.walk.weights_digests(model_info.layers) if ascents or config.dataset else {}

    def guarded(self, info: LayerInfo, phase: str, work: Callable):
        return _guarded(info, phase, work, self.failures, self.config.keep_going)

    def landed(self, info: LayerInfo) -> bool:
        """Its ascent is drawn (or failed, or it has none)."""
        return info.index in self.mosaics or info.index in self.failures or info.index not in self.ascents

    def reports(self) -> list[LayerReport]:
        return [self.report(info) for info in self.selected]

    def report(self, info: LayerInfo) -> LayerReport:
        index = info.index
        report = layer_report(info, self.slugs[index], self.kernels.get(index), self.responses.get(index),
                              self.mosaics.get(index), self.floors.get(index), self.failures.get(index),
                              self.examples.get(index))
        return replace(report, gradcams=tuple(self.gradcams[index])) if index in self.gradcams else report

    def first_look(self, images: list[InputImage], image_reports: list[ImageReport], root: str) -> None:
        """Filters of every layer, then feature maps of every image: the pictures that need no ascent."""
        loaded, config, tracker, slugs, guarded = self.loaded, self.config, self.tracker, self.slugs, self.guarded
        with self.clock.phase("filters"):
            for info in self.selected:
                tracker.advance(info.qualified_name, KERNELS)
                self.kernels[info.index] = guarded(info, "filters", lambda: draw_kernels(
                    loaded.walk, info, slugs[info.index], config.max_filters, root,
                    thumbnail=info.index not in self.ascents))
                if info.takes_images:
                    self.floors[info.index] = guarded(info, "unit floor", lambda: loaded.walk.unit_floor(info))
        with self.clock.phase("feature maps"):
            if not (images and self.image_layers):
                return
            probe = loaded.run.feature_probe(self.image_layers)
            collectors = {info.index: ResponseCollector(info, slugs[info.index], range(
                self.kernels[info.index].filters_shown if self.kernels.get(info.index) else 0))
                for info in self.image_layers}
            for start, stop in image_batches(len(images), config.image_batch_size):
                maps = probe(loaded.model_input(np.stack([image.pixels for image in images[start:stop]])))
                for info in self.image_layers:
                    tracker.advance(info.qualified_name, feature_phase(start + 1, stop))
                    for image in images[start:stop]:
                        guarded(info, "feature maps", lambda: collectors[info.index].add(
                            image_reports[image.index], maps[info.index][image.index - start], root))
                del maps
            for info in self.image_layers:
                self.responses[info.index] = guarded(info, "filter cards", lambda: collectors[info.index].finish(root))

    def dataset_examples(self, dataset: Dataset, place: Workplace) -> None:
        """Each card's data-set images that drive its filter most: one streamed pass of the data
        set for every layer not in the cache, then the crops and the whole images they link to."""
        with self.clock.phase("dataset examples"):
            tell = self.tracker.advance(DATASET, EXAMPLES)
            tell(0.0, "hashing the data set's files")
            digest = dataset.digest()
            config, layers = self.config, self.image_layers
            keys = {info.index: dataset_key(self.digests[unit_end(self.model_info, info).index], info, digest,
                                            self.loaded.geometry, config.dataset_top) for info in layers}
            costs = dataset_costs(len(dataset.items), layers, config,
                                  sum(info.flops for info in self.model_info.conv_layers))
            pass_share = costs[0] / (sum(costs) or 1.0)  # of the step; the crops are the rest
            cache = ResultCache(place.cache_root, "dataset", LayerExamples)
            found = {info.index: cache.load(keys[info.index]) for info in layers}
            missing = [info for info in layers if found[info.index] is None]
            if missing:
                fresh = self._dataset_pass(missing, dataset, [keys[info.index] for info in missing], place,
                                           lambda share, detail: tell(pass_share * share, detail))
                for index, entry in fresh.items():
                    cache.store(keys[index], entry)
                found.update(fresh)
            tell(pass_share, "crops")
            self.examples, self.summary = self._draw_examples(found, dataset, place.root)

    def _draw_examples(self, found: dict[int, LayerExamples], dataset: Dataset, root: str):
        """Each card's crops and the whole images they link to, and the data set's summary."""
        layers, kernels = self.image_layers, self.kernels
        skipped = found[layers[0].index].skipped
        inputs = InputCache(dataset, self.loaded.input_hw, self.loaded.channels)
        pictures = {}
        for info in layers:
            shown = range(kernels[info.index].filters_shown if kernels.get(info.index) else 0)
            pictures[info.index] = self.guarded(info, "dataset examples", lambda: draw_examples(
                found[info.index], info, self.slugs[info.index], shown, dataset, inputs, root))
        wanted = {example.image for layer in pictures.values() if layer for card in layer.cards
                  for example in card.examples}
        counts = tuple(int(n) for n in found[layers[0].index].class_counts)  # the images the pass read, per class
        summary = DatasetSummary(os.path.basename(os.path.normpath(dataset.source)), len(dataset.items) - len(skipped),
                                 dataset.classes, counts, skipped,
                                 draw_pictures(dataset, wanted, inputs, root), self.config.dataset_top)
        return pictures, summary

    def _dataset_pass(self, layers: list[LayerInfo], dataset: Dataset, keys: list[str], place: Workplace,
                      tell: Callable[[float, str], None]) -> dict[int, LayerExamples]:
        """The pass as units of work, shards of the data set (``plan_shards``), each cached as it
        finishes; then the reduce step, in shard order, so any executor finds the same examples."""
        config, executor, unit_cache = self.config, place.executor, place.unit_cache
        work_key = hashlib.sha256(json.dumps([keys, config.dataset_batch_size, config.keep_going]).encode()).hexdigest()
        work = DatasetWork(work_key, self.loaded, tuple(layers), dataset, config.dataset_batch_size, config.keep_going,
                           config.dataset_top)
        shards = plan_shards(len(dataset.items), config.dataset_batch_size)
        unit_keys = [hashlib.sha256(f"{work_key}:{start}:{stop}".encode()).hexdigest() for start, stop in shards]
        found = [unit_cache.load(key, ShardExamples) for key in unit_keys]
        missing = [position for position, result in enumerate(found) if result is None]
        tickets = executor.submit(work, [shards[p] for p in missing],
                                  lambda i, result: unit_cache.store(unit_keys[missing[i]], result))

        def report(done: int, total: int) -> None:  # shards are whole batches, all of one size but the last
            images = min(len(dataset.items), sum(stop - start for start, stop in shards[:len(found) - total + done]))
            tell(images / max(1, len(dataset.items)), f"images {images} of {len(dataset.items)}")

        for position, result in zip(missing, executor.results(tickets, report)):
            found[position] = result
        merged = {info.index: merge_examples([shard.parts[n] for shard in found], config.dataset_top)
                  for n, info in enumerate(layers)}
        for key in unit_keys:  # the layers' entries hold them now
            unit_cache.discard(key)
        return merged

    def climb(self, place: Workplace, landed: Callable[[LayerInfo], None]) -> None:
        """Every layer's mosaic and its cards' pictures; ``landed(layer)`` as each one is drawn."""
        with self.clock.phase("gradient ascent"):
            climbed = [info for info in self.image_layers if info.index in self.ascents]
            if not climbed:
                return
            config = self.config
            self.work = ascent_work(self.loaded, self.model_info, config, self.digests[self.model_info.layers[-1].index])
            climber = MosaicClimber(self.work, place.executor, place.cache, place.unit_cache, self.digests)
            try:
                for info in climbed:  # every layer's units are planned and handed out first
                    self.guarded(info, "gradient ascent", lambda: climber.start(info))
                climber.trace_ahead()
                for info in climbed:
                    tell = self.tracker.advance(info.qualified_name, ASCENT)
                    mosaic = self.guarded(info, "gradient ascent", lambda: draw_mosaic(
                        climber.entry(info, tell), info, self.slugs[info.index],
                        range(self.kernels[info.index].filters_shown), config, place.root))
                    if mosaic is not None:
                        self.mosaics[info.index] = mosaic
                    landed(info)
            finally:
                climber.close()


def _guarded(info: LayerInfo, phase: str, work: Callable, failures: dict[int, str], keep_going: bool):
    """``work()``'s result; an unexpected error names the layer (with --keep-going it is kept in
    ``failures`` for the layer's page, and the layer's later phases are skipped: None)."""
    if info.index in failures:
        return None
    try:
        return work()
    except (CnnvizError, OSError):  # already one line (or a write failure, reported for the whole site)
        raise
    except Exception as error:
        reason = f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"
        if not keep_going:
            raise LayerError(info.qualified_name, f"{info.type_name} layer failed while drawing its {phase}: "
                             f"{reason} (--debug shows the traceback; --keep-going builds the other layers)") from error
        failures[info.index] = f"{phase}: {reason}"
        return None


def _write_single_file(config: ReportConfig, report: Report, clock: PhaseClock) -> int:
    with clock.phase("single file"):
        try:
            return write_single_file(report, config.out, config.single_file, config.single_file_images)
        except OSError as error:
            raise SiteWriteError(config.single_file, f"cannot write the single-file report: "
                                 f"{error.strerror or error}; the site itself was built") from error
