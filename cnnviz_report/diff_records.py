"""A checkpoint diff's records and their ranking: what changed from report A to report B, per
filter, layer and image, as diff.py leaves it and the diff's pages and summary read it. Plain data
beside records.py, which holds what one report is; neither the build nor analysis/ is imported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layers import LayerInfo
from .records import ImageAttribution, ImageReport, Report
from .render import ImageAsset

RESPONSE_TOLERANCE = 1e-6  # a response change below this is float noise, not a change


def _response_changed(change: float | None) -> bool:
    """Measured, and above float noise (NaN counts as changed)."""
    return change is not None and not change <= RESPONSE_TOLERANCE


RANKED_FILTERS = 16  # the filters a diff layer page ranks, by kernel and by response change, and links to


@dataclass(frozen=True)
class FilterChange:
    number: int
    relative_l2: float  # ||B - A|| / ||A|| of the kernel
    cosine: float  # of A's and B's kernels
    response_change: float | None = None  # on the images (``diff.response_changes``); None: no images

    @property
    def kernel_changed(self) -> bool:
        return not self.relative_l2 == 0.0  # NaN counts as changed

    @property
    def response_changed(self) -> bool:
        return _response_changed(self.response_change)


@dataclass(frozen=True)
class Triple:
    """One thing under A and under B on one shared scale, and B − A on its own diverging scale."""

    a: ImageAsset
    b: ImageAsset
    delta: ImageAsset


@dataclass(frozen=True)
class FilterDiffPictures:
    """What a filter's anchor ``#f<number>`` on a diff page shows: its kernel under A, B and B − A
    (when it changed), and its map on the image where its response changed most."""

    number: int
    kernel: Triple | None  # None: the kernel did not change
    response: Triple | None = None
    response_image: str = ""  # the name of the image ``response`` is drawn on


@dataclass(frozen=True)
class ImageDiff:
    """One layer's feature maps on one image under A and B (one shared scale), B − A per channel
    and over the channels (diverging), and how much they changed."""

    name: str
    grids: Triple
    mean_difference: ImageAsset
    response_change: float


@dataclass(frozen=True)
class LayerDiff:
    info: LayerInfo
    slug: str
    changes: tuple[FilterChange, ...]  # every filter, most changed kernel first
    became_dead: tuple[int, ...]
    came_alive: tuple[int, ...]
    images: tuple[ImageDiff, ...] = ()  # in image order
    filter_grids: Triple | None = None  # every kernel: A and B on one shared scale, B − A
    filter_pictures: tuple[FilterDiffPictures, ...] = ()  # the filters that changed, most changed first
    response_change: float | None = None  # ||B − A|| / ||A|| of the layer's maps, mean over images

    @property
    def changed(self) -> tuple[FilterChange, ...]:
        """The filters whose kernel changed at all, most changed first."""
        return tuple(c for c in self.changes if c.kernel_changed)

    @property
    def response_changed(self) -> bool:
        return _response_changed(self.response_change)

    @property
    def response_ranked(self) -> tuple[FilterChange, ...]:
        """The filters whose response changed, most changed first (none without images)."""
        return ranked_responses(self.changes)

    @property
    def mean_change(self) -> float:
        return float(np.mean([c.relative_l2 for c in self.changes])) if self.changes else 0.0

    @property
    def thumbnails(self) -> tuple[ImageAsset | None, ImageAsset | None]:
        """For the index: the most changed kernel's B − A, and the first image's difference map;
        None where nothing changed (a white picture says less than no picture)."""
        top = self.changed[0].number if self.changed else None
        kernel = next((p.kernel.delta for p in self.filter_pictures if p.number == top and p.kernel), None)
        return kernel, self.images[0].mean_difference if self.images and self.response_changed else None


@dataclass(frozen=True)
class DecisionChange:
    """How one image's explanation changed from A to B: the class, where the model looked (the
    last conv layer's Grad-CAM) and which units decided."""

    image: ImageReport  # A's
    a: ImageAttribution
    b: ImageAttribution
    center_shift: float  # distance between the Grad-CAM centres, in input widths/heights
    map_similarity: float  # cosine similarity of the two Grad-CAM maps (1: the same place, 0: elsewhere)
    shared_units: tuple[tuple[str, int], ...]  # (layer, filter) among both top lists

    @property
    def class_changed(self) -> bool:
        return self.a.class_index != self.b.class_index


@dataclass(frozen=True)
class DiffReport:
    """Two sites of one architecture and what changed between them."""

    a: Report
    b: Report
    a_name: str  # the checkpoints as the user named them
    b_name: str
    layers: tuple[LayerDiff, ...]  # in model order
    decisions: tuple[DecisionChange, ...] = ()  # per image explained in both


def _descending(value: float | None) -> float:
    """A sort key putting the largest first, NaN (a NaN weight or map) before everything."""
    return -np.nan_to_num(0.0 if value is None else value, nan=np.inf)


def ranked_responses(changes) -> tuple[FilterChange, ...]:
    """The filters whose response changed, most changed first (none without images)."""
    changed = [c for c in changes if c.response_changed]
    return tuple(sorted(changed, key=lambda c: (_descending(c.response_change), c.number)))


def ranked_layers(diffs) -> list[LayerDiff]:
    """Most changed kernels first; NaN (a NaN weight) ranks first; equal changes keep model order."""
    return sorted(diffs, key=lambda d: (_descending(d.mean_change), d.info.index))


def ranked_by_response(diffs) -> list[LayerDiff]:
    """Most changed responses first, so a layer downstream of a change shows even when its own
    kernels did not change; then by kernel change (all of it without images)."""
    return sorted(diffs, key=lambda d: (_descending(d.response_change), _descending(d.mean_change), d.info.index))
