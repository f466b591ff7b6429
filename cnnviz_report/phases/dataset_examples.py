"""Phase: the real images each filter fires on most (OpenAI Microscope's and Distill's "dataset
examples"), next to the picture gradient ascent draws of what it could like.

The images of ``--dataset`` stream through the feature probe in batches. Each layer's
``ExampleCollector`` keeps, for every filter, the k images whose maximum response is highest and
where that maximum sat, and with classes the sum, count and maximum of the per-image maxima per
class: memory grows with the filters, never with the images. ``draw_examples`` then cuts each
card's crops, the filter's receptive field around that position, from the input the model saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import render

TOP_EXAMPLES = 9  # Microscope and Distill show 9 or 10 a unit
CROP_SIDE = 64  # crops are drawn at about this many pixels a side


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

    def add(self, maps: np.ndarray, image_indices: np.ndarray, labels: np.ndarray | None = None) -> None:
        """``maps``: (B, H, W, F) responses of data-set images ``image_indices`` (ascending, and
        after every image added before), with class ``labels`` when the data set has classes."""
        batch, height, width, filters = maps.shape
        self.map_hw = (height, width)
        flat = maps.reshape(batch, height * width, filters).astype(np.float32, copy=False)
        flat = np.where(np.isnan(flat), -np.inf, flat)  # a NaN never ranks first
        where = flat.argmax(axis=1)  # (B, F): the first position of each maximum
        peaks = np.take_along_axis(flat, where[:, None, :], axis=1)[:, 0, :]  # (B, F)
        rows, columns = np.divmod(where, width)
        values = np.concatenate([self.values, peaks.T], axis=1)
        images = np.concatenate([self.images, np.broadcast_to(np.asarray(image_indices, np.int64), (filters, batch))],
                                axis=1)
        positions = np.concatenate([self.positions, np.stack([rows.T, columns.T], axis=-1).astype(np.int32)], axis=1)
        # stable: among equal maxima the earlier image (smaller index, further left) stays first
        order = np.argsort(-values, axis=1, kind="stable")[:, : self.k]
        self.values = np.take_along_axis(values, order, axis=1)
        self.images = np.take_along_axis(images, order, axis=1)
        self.positions = np.take_along_axis(positions, order[:, :, None], axis=1)
        if labels is not None and len(self.class_counts):
            finite = np.where(np.isfinite(peaks), peaks, 0.0)
            np.add.at(self.class_sums, labels, finite)
            np.add.at(self.class_counts, labels, 1)
            np.maximum.at(self.class_maxima, labels, peaks)

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
    with np.errstate(invalid="ignore", divide="ignore"):
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
    """A crop as a uint8 RGB picture of about CROP_SIDE pixels (whole-factor scaling, so a
    3-pixel receptive field shows its 3 pixels)."""
    picture = np.clip(np.asarray(crop, np.float64), 0, 255).round().astype(np.uint8)
    if picture.shape[-1] == 1:
        picture = np.repeat(picture, 3, axis=-1)
    elif picture.shape[-1] == 4:
        picture = picture[..., :3]
    return render.scale_tile(picture, CROP_SIDE)


def card_examples(examples: LayerExamples, number: int) -> list[tuple[int, float, tuple[int, int]]]:
    """A filter's (data-set image, maximum, position), best first, without the empty slots."""
    return [(int(image), float(value), (int(row), int(column)))
            for image, value, (row, column) in zip(examples.images[number], examples.values[number],
                                                   examples.positions[number])
            if image >= 0 and np.isfinite(value)]
