"""The plain data that flows between a build's phases, and that the presentation reads.

Each drawing phase returns its own frozen record per layer (``KernelPictures``,
``ResponsePictures``, ``MosaicPictures``); ``combine.layer_report`` joins them once into a
``LayerReport``. Pages, summary.md, health.csv and the single file read only these records (a
checkpoint diff's own are in diff_records.py), so they can be rendered from hand-made ones
without TensorFlow (tests do).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import __version__
from .ascent_rules import kept_share
from .health import KernelFindings, LayerHealth
from .layers import LayerInfo, ModelInfo
from .notes import Notes
from .render import ImageAsset
from .stages import Stages

# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Prediction:
    index: int  # the class's output index
    label: str  # its name, or "class <index>"
    probability: float


@dataclass(frozen=True)
class GradCam:
    """Where in one image the evidence for its class sits, at one conv layer."""

    layer_index: int
    image_index: int
    picture: ImageAsset  # the heatmap over the input the model saw, with its scale
    center: tuple[float, float]  # its centre of mass, (x, y) as fractions of the input's width and height
    heatmap: np.ndarray  # float32 (h, w) at the layer's map size, >= 0 (a diff compares two)


@dataclass(frozen=True)
class DecisionUnit:
    """A unit of the last conv layers that added to an image's class score: activation x
    gradient summed over positions, and where in the image it did so."""

    layer_index: int
    layer_name: str
    number: int  # the filter
    contribution: float
    share: float  # of its layer's positive contributions
    where: ImageAsset
    has_card: bool  # drawn (within --max-filters): its card holds its pictures
    ascent: ImageAsset | None = None  # without a card: its gradient-ascent picture, climbed for this page


@dataclass(frozen=True)
class ImageAttribution:
    """Why the model said it, for one image: the class explained, where it looked, which units."""

    class_index: int
    label: str
    probability: float | None
    gradcam: GradCam  # at the last conv layer
    units: tuple[DecisionUnit, ...]  # best first
    score: str = ""  # a one-unit binary classifier's: "logit" (class 1) or "-logit" (class 0); "": the class's own


@dataclass(frozen=True)
class ImageReport:
    """One user image as the site shows it: its page slug, the original picture, the input the
    model saw (resized to its input size) and what the model predicts for it."""

    index: int
    name: str
    slug: str
    source: str  # the file as the user named it (for a diff's second pass; never published)
    sha256: str
    original: ImageAsset
    model_input: ImageAsset | None = None
    thumbnail: ImageAsset | None = None  # small, for the index
    predictions: tuple[Prediction, ...] = ()
    attribution: ImageAttribution | None = None
    attribution_note: str = ""  # why there is none (a model without a class output)


# --------------------------------------------------------------------------- the kernels phase


@dataclass(frozen=True)
class KernelPictures:
    """What the weights alone give: the filter grids, one kernel picture per card, the findings."""

    filters: ImageAsset
    filters_rgb: ImageAsset | None
    filters_depthwise: ImageAsset | None  # separable convs: the depthwise kernels the filters share
    note: str
    filters_shown: int
    channels_shown: int
    channels_total: int
    nonfinite_filters: int
    kernel_cards: tuple[ImageAsset, ...]  # filter number = position; these filters get a card
    thumbnail: ImageAsset | None  # None when the layer's mosaic gives the thumbnail
    findings: KernelFindings


# --------------------------------------------------------------------------- the feature-map phase


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


@dataclass(frozen=True)
class ChannelStats:
    """Per image (rows) and output channel (columns): the response's mean, min, max, active share."""

    mean: np.ndarray
    min: np.ndarray
    max: np.ndarray
    active: np.ndarray

    @property
    def images(self) -> int:
        return len(self.max)


@dataclass(frozen=True)
class CardStrip:
    """A card's strip: its filter on the images that excite it most, most excited first."""

    number: int
    maps: ImageAsset
    top_images: tuple[ImageStat, ...]


@dataclass(frozen=True)
class ResponsePictures:
    """What one layer made of every image: the pictures per image and the numbers per channel."""

    features: tuple[FeatureAssets, ...]
    stats: ChannelStats
    strips: tuple[CardStrip, ...]


# --------------------------------------------------------------------------- the gradient-ascent phase


@dataclass(frozen=True)
class AscentQuality:
    """What a filter's ascent picture reached: the response to it, the response to it slightly
    shifted, scaled and rotated, and its share of high-frequency power (analysis/quality.py)."""

    activation: float
    transformed: float
    high_frequency: float

    @property
    def kept(self) -> float | None:
        """The share of the response the picture keeps under the transforms (None: no positive response)."""
        return kept_share(self.transformed, self.activation)


@dataclass(frozen=True)
class AscentTile:
    """One filter's gradient-ascent picture (for its card) and what it reached."""

    number: int
    picture: ImageAsset | None  # None: the filter has no card
    quality: AscentQuality
    dead: bool  # at its floor after a judged ascent, or NaN/Inf


@dataclass(frozen=True)
class MosaicPictures:
    mosaic: ImageAsset
    indices: tuple[int, ...]  # filter numbers in mosaic order
    dead: tuple[int, ...]  # ascent-dead filters (judged ascents only)
    judged: bool  # False: too few ascent steps to call a filter ascent-dead
    canvas: tuple[int, int]
    tiles: tuple[AscentTile, ...]  # in mosaic order
    thumbnail: ImageAsset


# --------------------------------------------------------------------------- the dataset-examples phase


@dataclass(frozen=True)
class DatasetExample:
    """One of the data-set images a filter fires on most: the crop around its maximum."""

    image: int  # data-set index
    name: str  # its path under the data set's root
    value: float  # the filter's maximum response on that image
    tile: int  # its crop's place in the card's picture of crops (FilterExamples.crops)
    picture: str  # site path of the whole image (DatasetSummary.pictures)
    alt: str


@dataclass(frozen=True)
class FilterExamples:
    """A card's dataset examples, and with classes its mean and top response per class."""

    number: int
    examples: tuple[DatasetExample, ...]
    crops: ImageAsset | None  # the examples' crops side by side, CROP_SIDE pixels each
    class_means: tuple[float, ...] = ()
    class_maxima: tuple[float, ...] = ()
    chart: ImageAsset | None = None  # the per-class bars, with their scale


@dataclass(frozen=True)
class ExamplePictures:
    """One layer's dataset examples: its cards', and numbers for every filter (health.csv)."""

    cards: tuple[FilterExamples, ...]
    top: np.ndarray  # float (F,), each filter's highest per-image maximum (-inf: no image)
    top_name: tuple[str, ...]  # per filter, the data-set image it came from ("": none)
    best_class: np.ndarray  # int (F,), the class with the highest mean maximum (-1: no classes)
    selectivity: np.ndarray  # float (F,), class selectivity index (NaN: not defined)
    classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetPicture:
    index: int
    name: str  # the path under the data set's root
    label: str | None
    picture: ImageAsset  # the image as the model saw it (resized to its input)


@dataclass(frozen=True)
class DatasetSummary:
    source: str
    images: int  # read and measured
    classes: tuple[str, ...]
    class_counts: tuple[int, ...]
    skipped: tuple[tuple[str, str], ...]  # (file, reason) with --keep-going
    pictures: tuple[DatasetPicture, ...]  # the images some card shows an example of
    top: int  # examples a filter


# --------------------------------------------------------------------------- combined


@dataclass(frozen=True)
class FilterCard:
    """Everything drawn for one filter; the layer page shows it at the anchor ``#f<number>``."""

    number: int
    kernel: ImageAsset | None  # None: a card of numbers only (a counted filter beyond --max-filters)
    ascent: ImageAsset | None = None
    ascent_quality: AscentQuality | None = None
    ascent_dead: bool = False
    maps: ImageAsset | None = None
    top_images: tuple[ImageStat, ...] = ()  # the images in ``maps``, most excited first
    examples: FilterExamples | None = None  # --dataset: the data-set images it fires on most


@dataclass(frozen=True)
class LayerReport:
    """One conv layer's page, as the phases left it (``combine.layer_report`` makes it)."""

    info: LayerInfo
    slug: str
    filters: ImageAsset | None = None
    filters_rgb: ImageAsset | None = None
    filters_depthwise: ImageAsset | None = None
    filter_note: str = ""
    filters_shown: int = 0
    channels_shown: int = 0
    channels_total: int = 0
    nonfinite_filters: int = 0
    mosaic: ImageAsset | None = None
    mosaic_filters: int = 0
    mosaic_dead: tuple[int, ...] = ()
    ascent_judged: bool = True
    mosaic_indices: tuple[int, ...] = ()
    mosaic_canvas: tuple[int, int] | None = None
    features: tuple[FeatureAssets, ...] = ()
    thumbnail: ImageAsset | None = None
    cards: tuple[FilterCard, ...] = ()
    stats: ChannelStats | None = None
    floor: np.ndarray | None = None  # per filter, the unit's floor (None: the response has none)
    health: LayerHealth | None = None
    dataset: ExamplePictures | None = None
    gradcams: tuple[GradCam, ...] = ()  # per image, this layer's Grad-CAM for its class
    failure: str | None = None  # with --keep-going: the phase and reason this layer could not be drawn

    @property
    def images_measured(self) -> int:
        return 0 if self.stats is None else self.stats.images


@dataclass(frozen=True)
class BuildState:
    """A report published before its build ended (a streamed build's first look and updates, or
    what a stopped build leaves): what is not drawn yet, in words the pages and summary.md show."""

    waiting: tuple[int, ...] = ()  # layers (LayerInfo.index) whose gradient-ascent pictures are not drawn
    examples_waiting: bool = False  # the data-set examples (--dataset) are not drawn
    explanations_waiting: bool = False  # each image's Grad-CAM and deciding units are not drawn
    left: str = ""  # "about 12 min left"
    written: str = ""  # when this state was published, "21:15 UTC"
    stopped: str = ""  # why the build ended before the rest was drawn ("" while it goes on)

    @property
    def words(self) -> str:
        """``being drawn: about 12 min left at 21:15 UTC``, or ``not drawn: the build stopped (...)``."""
        if self.stopped:
            return f"not drawn: the build stopped ({self.stopped}); run the same command again to finish it"
        return f"being drawn: {self.left} at {self.written}" if self.left else f"being drawn at {self.written}"

    def layer_waits(self, index: int) -> bool:
        return index in self.waiting


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
    dataset: DatasetSummary | None = None
    preprocess_reason: str = ""  # why --preprocess auto chose ``preprocess``
    stages: Stages = Stages(stages=(), rule="output resolution")  # every conv layer's stage (the index's sections)
    unpicked_stages: tuple[str, ...] = ()  # --per-stage last: stages whose kept layers are all 1x1
    state: BuildState | None = None  # None: the whole report; else what a published build still lacks
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
    cache_write_errors: int = 0
    site_bytes: int = 0
    single_file: str | None = None
    single_file_bytes: int = 0
    units_reused: int = 0  # units of work (ascent batches, data-set shards) found in the cache
    units_computed: int = 0
