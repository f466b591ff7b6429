"""Phase: the real images each filter fires on most (OpenAI Microscope's and Distill's "dataset
examples"), next to the picture gradient ascent draws of what it could like.

The images of ``--dataset`` stream through the feature probe in batches. Each layer's
``ExampleCollector`` keeps, for every filter, the k images whose maximum response is highest and
where that maximum sat, and with classes the sum, count and maximum of the per-image maxima per
class: memory grows with the filters, never with the images. ``draw_examples`` then cuts each
card's crops, the filter's receptive field around that position, from the input the model saw.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
from PIL import Image

from .. import paths, render
from ..analysis.activations import Peaks
from ..datasets import Dataset
from ..errors import ImageLoadError
from ..layers import LayerInfo
from ..loading import load_pixels
from ..records import DatasetExample, DatasetPicture, ExamplePictures, FilterExamples

TOP_EXAMPLES = 9  # Microscope and Distill show 9 or 10 a unit
CROP_SIDE = 64  # crops are drawn at this many pixels a side, side by side in one picture a card


@dataclass(frozen=True)
class LayerExamples:
    """One layer's pass over the data set, as plain arrays (what the cache keeps)."""

    values: np.ndarray  # float32 (F, k), each filter's best per-image maxima, best first; -inf: none
    images: np.ndarray  # int64 (F, k), their data-set indices; -1: none
    positions: np.ndarray  # int32 (F, k, 2), (row, column) of the maximum in the response map
    map_hw: tuple[int, int]  # the response map's size, for the crops
    class_sums: np.ndarray  # float64 (classes, F): sum over a class's images of each filter's maximum
    class_counts: np.ndarray  # int64 (classes,)
    class_maxima: np.ndarray  # float32 (classes, F); -inf for a class with no image
    skipped: tuple[tuple[str, str], ...] = ()  # (file, reason) the pass could not read (--keep-going)

    def arrays(self) -> dict[str, np.ndarray]:
        return dict(values=self.values, images=self.images, positions=self.positions,
                    map_hw=np.asarray(self.map_hw, np.int64), class_sums=self.class_sums,
                    class_counts=self.class_counts, class_maxima=self.class_maxima,
                    skipped=np.asarray([item for pair in self.skipped for item in pair], dtype=str))

    @classmethod
    def from_arrays(cls, stored) -> "LayerExamples":
        flat = [str(item) for item in stored["skipped"]]
        return cls(stored["values"], stored["images"], stored["positions"],
                   tuple(int(v) for v in stored["map_hw"]), stored["class_sums"], stored["class_counts"],
                   stored["class_maxima"], tuple(zip(flat[0::2], flat[1::2])))

    def to_npz(self, stream) -> None:
        np.savez(stream, **self.arrays())

    @classmethod
    def from_npz(cls, stored) -> "LayerExamples":
        return cls.from_arrays(stored)

    @property
    def class_means(self) -> np.ndarray:
        """(classes, F): each filter's mean per-image maximum in each class (NaN: no image)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.class_sums / self.class_counts[:, None]


class ExampleCollector:
    """Streams batches of one layer's response maps into its ``LayerExamples``."""

    def __init__(self, filters: int, classes: int, k: int = TOP_EXAMPLES):
        self.k = k
        self.values = np.full((filters, 0), -np.inf, np.float32)
        self.images = np.zeros((filters, 0), np.int64)
        self.positions = np.zeros((filters, 0, 2), np.int32)
        self.map_hw: tuple[int, int] | None = None
        self.class_sums = np.zeros((classes, filters), np.float64)
        self.class_counts = np.zeros(classes, np.int64)
        self.class_maxima = np.full((classes, filters), -np.inf, np.float32)

    def add(self, peaks: Peaks, image_indices: np.ndarray, labels: np.ndarray | None = None) -> None:
        """``peaks``: the responses of data-set images ``image_indices`` (ascending, and after
        every image added before), with class ``labels`` when the data set has classes."""
        batch, filters = peaks.values.shape
        self.map_hw = peaks.map_hw
        rows, columns = np.divmod(peaks.where, max(1, peaks.map_hw[1]))
        maxima = peaks.values
        values = np.concatenate([self.values, maxima.T], axis=1)
        images = np.concatenate([self.images, np.broadcast_to(np.asarray(image_indices, np.int64), (filters, batch))],
                                axis=1)
        positions = np.concatenate([self.positions, np.stack([rows.T, columns.T], axis=-1).astype(np.int32)], axis=1)
        # stable: among equal maxima the earlier image (smaller index, further left) stays first
        order = np.argsort(-values, axis=1, kind="stable")[:, : self.k]
        self.values = np.take_along_axis(values, order, axis=1)
        self.images = np.take_along_axis(images, order, axis=1)
        self.positions = np.take_along_axis(positions, order[:, :, None], axis=1)
        if labels is not None and len(self.class_counts):
            finite = np.where(np.isfinite(maxima), maxima, 0.0)
            np.add.at(self.class_sums, labels, finite)
            np.add.at(self.class_counts, labels, 1)
            np.maximum.at(self.class_maxima, labels, maxima)

    def result(self) -> LayerExamples:
        return LayerExamples(self.values, self.images, self.positions, self.map_hw or (0, 0), self.class_sums,
                             self.class_counts, self.class_maxima)


def selectivity(examples: LayerExamples) -> tuple[np.ndarray, np.ndarray]:
    """(each filter's most selective class, its class selectivity index) after Morcos et al. 2018:
    (mu_max - mu_rest) / (mu_max + mu_rest), the best class's mean per-image maximum against the
    mean of the other classes' means; 0 means no preference, 1 fires for one class only. NaN
    where it means nothing: fewer than two classes, or responses that are not positive."""
    means = examples.class_means
    filters = means.shape[1] if means.ndim == 2 else 0
    if means.shape[0] < 2:
        return np.full(filters, -1, np.int64), np.full(filters, np.nan)
    best = np.nanargmax(np.where(np.isnan(means), -np.inf, means), axis=0)
    best_mean = means[best, np.arange(filters)]
    rest = np.where(np.arange(means.shape[0])[:, None] == best[None, :], np.nan, means)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "Mean of empty slice": a class no image was read of
        rest_mean = np.nanmean(rest, axis=0)
        index = (best_mean - rest_mean) / (best_mean + rest_mean)
    index = np.where((best_mean > 0) & (rest_mean >= 0) & np.isfinite(index), index, np.nan)
    return best, index


def receptive_crop(pixels: np.ndarray, position: tuple[int, int], map_hw: tuple[int, int],
                   field: tuple | None) -> np.ndarray:
    """The part of ``pixels`` (the model's input, H x W x C) that the response at ``position`` of
    a ``map_hw`` map sees: a receptive-field-sized box centred where the position maps to,
    ((row + 1/2) H / map height, (column + 1/2) W / map width), which is exact for 'same' padding;
    moved inside the image where it would cross an edge, and never larger than the image."""
    height, width = pixels.shape[:2]
    size = tuple(int(round(f)) for f in field) if field else (height, width)
    box_h, box_w = min(height, max(1, size[0])), min(width, max(1, size[-1]))
    centre_y = (position[0] + 0.5) * height / max(1, map_hw[0])
    centre_x = (position[1] + 0.5) * width / max(1, map_hw[1])
    top = int(np.clip(round(centre_y - box_h / 2), 0, height - box_h))
    left = int(np.clip(round(centre_x - box_w / 2), 0, width - box_w))
    return pixels[top : top + box_h, left : left + box_w]


def crop_picture(crop: np.ndarray) -> np.ndarray:
    """A crop as a uint8 RGB picture of CROP_SIDE x CROP_SIDE pixels: enlarged with square pixels
    (a 3-pixel receptive field shows its 3 pixels), shrunk by averaging."""
    picture = np.clip(np.asarray(crop, np.float64), 0, 255).round().astype(np.uint8)
    if picture.shape[-1] == 1:
        picture = np.repeat(picture, 3, axis=-1)
    elif picture.shape[-1] == 4:
        picture = picture[..., :3]
    method = Image.Resampling.NEAREST if max(picture.shape[:2]) <= CROP_SIDE else Image.Resampling.BOX
    return np.asarray(Image.fromarray(picture).resize((CROP_SIDE, CROP_SIDE), method))


def card_examples(examples: LayerExamples, number: int) -> list[tuple[int, float, tuple[int, int]]]:
    """A filter's (data-set image, maximum, position), best first, without the empty slots."""
    return [(int(image), float(value), (int(row), int(column)))
            for image, value, (row, column) in zip(examples.images[number], examples.values[number],
                                                   examples.positions[number])
            if image >= 0 and np.isfinite(value)]


def merge_examples(parts: list[LayerExamples], k: int) -> LayerExamples:
    """The reduce step: one layer's ``LayerExamples`` of consecutive shards, in data-set order,
    as one pass over them all would have found them (among equal maxima the earlier image first)."""
    values = np.concatenate([part.values for part in parts], axis=1)
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]
    first = parts[0]
    return LayerExamples(
        np.take_along_axis(values, order, axis=1),
        np.take_along_axis(np.concatenate([part.images for part in parts], axis=1), order, axis=1),
        np.take_along_axis(np.concatenate([part.positions for part in parts], axis=1), order[:, :, None], axis=1),
        next((part.map_hw for part in parts if part.map_hw != (0, 0)), first.map_hw),
        sum((part.class_sums for part in parts[1:]), first.class_sums),
        sum((part.class_counts for part in parts[1:]), first.class_counts),
        np.maximum.reduce([part.class_maxima for part in parts]),
        tuple(pair for part in parts for pair in part.skipped))


SHARD_IMAGES = 128  # images a unit of work of the data-set pass (4 batches; ~30 s of VGG16 here)


def plan_shards(count: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each shard: whole batches, so a shard's batches are the one pass's."""
    size = max(batch_size, SHARD_IMAGES // batch_size * batch_size)
    return [(start, min(count, start + size)) for start in range(0, count, size)]


@dataclass(frozen=True)
class ShardExamples:
    """One shard's ``LayerExamples`` for each layer of the pass (what a unit returns and the unit
    cache keeps)."""

    layers: tuple[int, ...]
    parts: tuple[LayerExamples, ...]

    def to_npz(self, stream) -> None:
        arrays = {f"{n}.{name}": array for n, part in enumerate(self.parts) for name, array in part.arrays().items()}
        np.savez(stream, layers=np.asarray(self.layers, np.int64), **arrays)

    @classmethod
    def from_npz(cls, stored) -> "ShardExamples":
        layers = tuple(int(v) for v in stored["layers"])
        return cls(layers, tuple(LayerExamples.from_arrays({name.split(".", 1)[1]: stored[name] for name in stored.files
                                                            if name.startswith(f"{n}.")})
                                 for n in range(len(layers))))


@dataclass(frozen=True)
class DatasetWork:
    """What the data-set pass's units share: ``setup`` compiles the one forward pass to every
    layer's peaks, ``run`` streams one shard (start, stop) of the data set through it."""

    key: str
    loaded: object  # LoadedModel
    layers: tuple[LayerInfo, ...]
    dataset: Dataset
    batch_size: int
    keep_going: bool
    k: int

    def setup(self):
        return self.loaded.run.peak_probe(list(self.layers))

    def run(self, probe, shard: tuple[int, int]) -> ShardExamples:
        found = stream_examples(probe, self.loaded.model_input, self.dataset, list(self.layers), self.loaded.input_hw,
                                self.loaded.channels, self.batch_size, self.keep_going, self.k, shard)
        return ShardExamples(tuple(info.index for info in self.layers), tuple(found[info.index] for info in self.layers))


def stream_examples(probe, model_input, dataset: Dataset, layers: list[LayerInfo], input_hw: tuple[int, int],
                    channels: int, batch_size: int, keep_going: bool, k: int, shard: tuple[int, int] | None = None,
                    tell: Callable[[float, str], None] | None = None) -> dict[int, LayerExamples]:
    """One pass of the data set's images ``shard`` (start, stop; default all) through ``probe``
    (a ``PeakProbe``: one forward pass a batch for every layer): each layer's ``LayerExamples``,
    with the files that could not be read (``keep_going``)."""
    collectors = {info.index: ExampleCollector(info.filters or 0, len(dataset.classes), k) for info in layers}
    skipped: list[ImageLoadError] = []
    first, total = shard or (0, len(dataset.items))
    for start in range(first, total, batch_size):
        pixels, indices = [], []
        for index in range(start, min(total, start + batch_size)):
            item = dataset.items[index]
            try:
                pixels.append(load_pixels(item.path, input_hw, channels))
                indices.append(index)
            except ImageLoadError as error:
                if not keep_going:
                    raise
                skipped.append(error)
        if pixels:
            maps = probe(model_input(np.stack(pixels)))
            labels = np.array([dataset.items[i].label for i in indices]) if dataset.classes else None
            for info in layers:
                collectors[info.index].add(maps[info.index], np.array(indices), labels)
            del maps
        if tell is not None:
            done = min(total, start + batch_size)
            tell((done - first) / max(1, total - first), f"images {done} of {total}")
    pairs = tuple((error.subject, error.reason) for error in skipped)
    return {index: replace(collector.result(), skipped=pairs) for index, collector in collectors.items()}


def draw_examples(examples: LayerExamples, info: LayerInfo, slug: str, card_numbers: range, dataset: Dataset,
                  inputs: Callable[[int], np.ndarray], root: str) -> ExamplePictures:
    """Each card's crops (and per-class bars), and every filter's numbers; ``inputs(index)``
    gives a data-set image as the model saw it."""
    classes = list(dataset.classes)
    means, maxima = examples.class_means, examples.class_maxima
    cards = []
    for number in card_numbers:
        if number >= examples.values.shape[0]:
            continue
        shown, crops = [], []
        for image, value, position in card_examples(examples, number):
            crops.append(crop_picture(receptive_crop(inputs(image), position, examples.map_hw, info.receptive_field)))
            name = dataset.items[image].name
            shown.append(DatasetExample(image, name, value, len(shown), paths.dataset_picture(image, name),
                                        f"filter {number} of {info.name} on {name}: its receptive field around "
                                        f"its maximum, {value:.3g}"))
        # one picture a card, the crops side by side (the page shows each as a tile of it): a
        # file a crop was 38,000 files and most of the time for VGG16's 4,224 filters. JPEG, as
        # the whole images: crops of photographs, which it encodes 15-60x faster than PNG, 5x smaller
        sprite = render.save_jpeg(np.concatenate(crops, axis=1), root,
                                  paths.filter_asset(slug, number, "examples", ".jpg"),
                                  f"filter {number} of {info.name}: its {len(crops)} dataset examples") if crops else None
        chart = None
        if classes:
            chart = render.save_png(
                render.class_bars(classes, list(means[:, number]), list(maxima[:, number])), root,
                paths.filter_asset(slug, number, "classes"),
                f"filter {number} of {info.name}: mean (bar) and highest (tick) maximum response per class")
        cards.append(FilterExamples(number, tuple(shown), sprite,
                                    tuple(float(v) for v in means[:, number]) if classes else (),
                                    tuple(float(v) for v in maxima[:, number]) if classes else (), chart))
    best, index = selectivity(examples)
    filters = examples.values.shape[0]
    top = examples.values[:, 0] if examples.values.shape[1] else np.full(filters, -np.inf)
    top_image = examples.images[:, 0] if examples.images.shape[1] else np.full(filters, -1)
    names = tuple(dataset.items[int(i)].name if i >= 0 else "" for i in top_image)
    return ExamplePictures(tuple(cards), top, names, best, index, dataset.classes)


def draw_pictures(dataset: Dataset, wanted: set[int], inputs: Callable[[int], np.ndarray],
                  root: str) -> tuple[DatasetPicture, ...]:
    """The whole images the cards' crops link to, each written once, as the model saw them."""
    pictures = []
    for index in sorted(wanted):
        item = dataset.items[index]
        pixels = np.clip(inputs(index), 0, 255).round().astype(np.uint8)
        pixels = np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels[..., :3]
        asset = render.save_jpeg(pixels, root, paths.dataset_picture(index, item.name),
                                 f"{item.name}, as the model saw it")
        pictures.append(DatasetPicture(index, item.name, dataset.classes[item.label] if item.label is not None
                                       else None, asset))
    return tuple(pictures)


class InputCache:
    """Data-set images as the model saw them (uint8), read on demand while the crops are cut:
    at most ``limit`` kept (the oldest read goes first), so memory stays bounded."""

    def __init__(self, dataset: Dataset, input_hw: tuple[int, int], channels: int, limit: int = 2048):
        self.dataset, self.input_hw, self.channels, self.limit = dataset, input_hw, channels, limit
        self._pixels: dict[int, np.ndarray] = {}

    def __call__(self, index: int) -> np.ndarray:
        if index not in self._pixels:
            if len(self._pixels) >= self.limit:
                del self._pixels[next(iter(self._pixels))]
            pixels = load_pixels(self.dataset.items[index].path, self.input_hw, self.channels)
            self._pixels[index] = np.clip(pixels, 0, 255).round().astype(np.uint8)
        return self._pixels[index]
