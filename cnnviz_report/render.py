"""numpy arrays -> tiled uint8 pictures -> PNG files. No TensorFlow here.

Every picture the seeds draw with one matplotlib subplot per tile is drawn here as one array:
tiles are normalised, scaled to a readable size (nearest-neighbour when enlarging, so kernel
pixels stay visible), labelled, and laid out on a grid with gaps.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .staging import replace_file

GAP = 2
BACKGROUND = 255
LABEL_HEIGHT = 13
FEATURE_TILE = 112  # feature-map tiles are scaled towards this many pixels
BELT_TILE_MAX = 128
BELT_TILE_MIN = 48
BELT_ROW = 16
KERNEL_CELL = 24  # a kernel is enlarged to about this many pixels
CONSTANT_GREY = 128
SEQUENTIAL, DIVERGING, GREY = "viridis", "RdBu_r", "gray"  # values, signed values, standardised belts
COLORMAPS = (SEQUENTIAL, DIVERGING, GREY)
JPEG_QUALITY = 88
NONFINITE_RGB = (255, 0, 255)  # NaN and Inf are painted magenta: no real value has this colour here


@dataclass(frozen=True)
class ColourScale:
    """What a picture's colours mean, for the colour bar the pages draw under it.

    ``shared``: one scale for every tile of the picture (``low``..``high`` are real values);
    otherwise each tile is stretched over its own range and the bar reads "each tile's min..max".
    Signed data (kernels, differences) use the diverging map centred on zero: ``low == -high``.
    """

    colormap: str
    low: float
    high: float
    label: str  # what the numbers are: "weight", "activation", ...
    shared: bool = True


@dataclass(frozen=True)
class Tile:
    """Where filter ``number`` is drawn in a picture (pixels), so the page can make it a link
    with its number as text."""

    number: int
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class ImageAsset:
    """A picture written into the site: where it is and how to show it."""

    path: str  # site-relative, '/'-separated
    width: int
    height: int
    alt: str
    scale: ColourScale | None = None  # None: the colours are the picture's own (photos, ascent images)
    tiles: tuple[Tile, ...] = ()  # the filters drawn in it, each a link on the page


# --------------------------------------------------------------------------- numbers


def unit_range(values: np.ndarray) -> tuple[np.ndarray, bool]:
    """Scale to [0, 1] by min and max; a constant (or all non-finite) array gives zeros, True."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape), True
    low, high = values[finite].min(), values[finite].max()
    if high <= low:
        return np.zeros(values.shape), True
    scaled = (np.where(finite, values, low) - low) / (high - low)
    return scaled, False


def signed_unit(values: np.ndarray, reference: np.ndarray | None = None,
                percentile: float = 100.0) -> tuple[np.ndarray, float]:
    """Signed values -> [0, 1] with 0 at 0.5, by the ``percentile`` of the finite magnitudes of
    ``reference`` (default: ``values``; larger ones are drawn at full colour); also returns that
    magnitude, the colour bar's end."""
    values = np.asarray(values, dtype=np.float64)
    reference = values if reference is None else np.asarray(reference, dtype=np.float64)
    finite = np.abs(reference[np.isfinite(reference)])
    magnitude = float(np.percentile(finite, percentile)) if finite.size else 0.0
    if magnitude == 0.0:
        return np.full(values.shape, 0.5), 0.0
    return np.clip(0.5 + np.nan_to_num(values, nan=0.0, posinf=magnitude, neginf=-magnitude) / (2 * magnitude),
                   0.0, 1.0), magnitude


def shared_unit(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """[0, 1] by the finite min and max of all ``values`` (one scale for every tile cut from them)."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if high <= low:
        return np.zeros(values.shape), low, high
    return np.clip((np.nan_to_num(values, nan=low, posinf=high, neginf=low) - low) / (high - low), 0.0, 1.0), low, high


def standardise(channel: np.ndarray) -> tuple[np.ndarray, bool]:
    """Seed 003's display transform: (x - mean) / std * 64 + 128, clipped, uint8.

    A constant channel has no std; it is drawn flat grey and reported as constant.
    """
    values = np.asarray(channel)
    tiles, constant = standardise_channels(values.reshape(1, -1))
    return tiles.reshape(values.shape), bool(constant[0])


def standardise_channels(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``standardise`` of each row of ``rows`` (C, N) at once: (uint8 (C, N), constant (C,)).

    A layer of 2,048 channels is one pass of numpy, not 2,048. Non-finite values are replaced by
    their row's finite mean; a row without one is constant."""
    values = np.array(rows, dtype=np.float64)
    finite = np.isfinite(values)
    has_finite = finite.any(axis=1)
    for row in np.flatnonzero(~finite.all(axis=1) & has_finite):  # rare: exactly as one channel alone
        values[row] = np.where(finite[row], values[row], values[row][finite[row]].mean())
    values[~has_finite] = 0.0
    mean = values.mean(axis=1, keepdims=True)
    std = values.std(axis=1, keepdims=True)
    constant = ~has_finite | (std[:, 0] <= 1e-12 * np.maximum(1.0, np.abs(mean[:, 0])))
    scaled = (values - mean) / np.where(constant[:, None], 1.0, std) * 64.0 + 128.0
    tiles = np.clip(scaled, 0, 255).astype(np.uint8)
    tiles[constant] = CONSTANT_GREY
    return tiles, constant


def mark_nonfinite(rgb: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``rgb`` (H, W, 3) with the pixels whose ``values`` are NaN or Inf painted magenta."""
    bad = ~np.isfinite(values)
    if bad.any():
        rgb = rgb.copy()
        rgb[bad] = NONFINITE_RGB
    return rgb


def to_uint8(unit: np.ndarray) -> np.ndarray:
    return (np.clip(unit, 0.0, 1.0) * 255.0).round().astype(np.uint8)


@lru_cache(maxsize=4)
def _colormap_lut(name: str) -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)


def colorize(unit: np.ndarray, colormap: str = "viridis") -> np.ndarray:
    """[0, 1] values -> uint8 RGB through a matplotlib colour map (as the seeds' imshow)."""
    return _colormap_lut(colormap)[to_uint8(unit)]


# --------------------------------------------------------------------------- layout


def scale_tile(tile: np.ndarray, target: int) -> np.ndarray:
    """Enlarge by a whole factor (nearest) or shrink by a whole factor (box) towards ``target``."""
    height, width = tile.shape[:2]
    side = max(height, width)
    if side < target:
        factor = max(1, round(target / side))
        return np.repeat(np.repeat(tile, factor, axis=0), factor, axis=1)
    factor = math.ceil(side / target)
    if factor <= 1:
        return tile
    size = (max(1, width // factor), max(1, height // factor))
    return np.asarray(Image.fromarray(tile).resize(size, Image.Resampling.BOX))


def _as_rgb(tile: np.ndarray) -> np.ndarray:
    return np.repeat(tile[:, :, None], 3, axis=2) if tile.ndim == 2 else tile


def grid_tiles(numbers, tile_hw: tuple[int, int], columns: int, gap: int, origin: tuple[int, int] = (0, 0),
               span: int = 1) -> tuple[Tile, ...]:
    """Where ``tile_grid`` puts each of ``numbers`` (``span`` cells wide each), as Tiles."""
    height, width = tile_hw
    left, top = origin
    return tuple(Tile(number, left + (position % columns) * span * (width + gap),
                      top + (position // columns) * (height + gap), span * (width + gap) - gap, height)
                 for position, number in enumerate(numbers))


def tile_grid(tiles: list[np.ndarray], columns: int, gap: int = GAP, background: int = BACKGROUND) -> np.ndarray:
    """Lay equal-size tiles row by row, ``gap`` pixels apart; grey tiles stay 2-D when all are."""
    if not tiles:
        raise ValueError("tile_grid needs at least one tile")
    colour = any(t.ndim == 3 for t in tiles)
    tiles = [_as_rgb(t) if colour else t for t in tiles]
    height, width = tiles[0].shape[:2]
    columns = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    shape = (rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap)
    canvas = np.full(shape + ((3,) if colour else ()), background, np.uint8)
    for position, tile in enumerate(tiles):
        row, column = divmod(position, columns)
        top, left = row * (height + gap), column * (width + gap)
        canvas[top : top + height, left : left + width] = tile
    return canvas


@lru_cache(maxsize=2)
def _font(size: int = 11):
    return ImageFont.load_default(size=size)


def add_caption(tile: np.ndarray, text: str, marked: bool = False) -> np.ndarray:
    """A band of LABEL_HEIGHT pixels above the tile with ``text``; red text when ``marked``."""
    rgb = _as_rgb(tile)
    band = Image.new("RGB", (rgb.shape[1], LABEL_HEIGHT), (255, 255, 255))
    ImageDraw.Draw(band).text((1, 0), text, fill=(200, 0, 0) if marked else (40, 40, 40), font=_font())
    return np.concatenate([np.asarray(band), rgb], axis=0)


# --------------------------------------------------------------------------- the pictures


@dataclass(frozen=True)
class FilterGrid:
    image: np.ndarray
    filters_shown: int
    filters_total: int
    channels_shown: int
    channels_total: int
    nonfinite_filters: int = 0  # filters with a NaN or Inf weight (painted magenta)
    scale: ColourScale | None = None
    tiles: tuple[Tile, ...] = ()


def _kernel_cell_factor(kh: int, kw: int) -> int:
    return max(1, KERNEL_CELL // max(kh, kw))


KERNEL_PERCENTILE = 99.0  # a few large weights would wash every other kernel out to white


def kernel_scale(magnitude: float) -> ColourScale:
    return ColourScale(DIVERGING, -magnitude, magnitude,
                       "weight (blue negative, white 0, red positive; the largest 1 % at full colour)")


WRAP_CELLS = 16  # a kernel grid row holds this many cells: filters with few channels share a row


def filter_grid(kernel: np.ndarray, max_filters: int = 64, max_channels: int = 32,
                scale_with: np.ndarray | None = None) -> FilterGrid:
    """Seed 000/001's picture: each filter a row of cells, one per input channel, on one scale.

    Weights are signed, so they are drawn on a diverging scale centred on zero (white) by the
    layer's largest magnitude (99th percentile), so tiles compare across the grid; with
    ``scale_with`` (another checkpoint's kernel) both share one scale, so two grids compare too.
    Filters with many channels get a row each; filters with few (RGB input, depthwise) share a
    row, so 64 of them are not a 3000 px strip. The page numbers them, as text over
    ``FilterGrid.tiles``.
    """
    kh, kw, channels, filters = kernel.shape
    reference = kernel if scale_with is None else np.concatenate([kernel, scale_with], axis=-1)
    unit, magnitude = signed_unit(kernel, reference, KERNEL_PERCENTILE)
    shown_filters, shown_channels = min(filters, max_filters), min(channels, max_channels)
    factor = _kernel_cell_factor(kh, kw)
    cells = []
    for f in range(shown_filters):
        for c in range(shown_channels):
            cell = mark_nonfinite(colorize(unit[:, :, c, f], DIVERGING), kernel[:, :, c, f])
            cells.append(np.repeat(np.repeat(cell, factor, axis=0), factor, axis=1))
    cell_hw = (kh * factor, kw * factor)
    per_row = max(1, min(shown_filters, WRAP_CELLS // shown_channels))
    if per_row == 1:
        image = tile_grid(cells, shown_channels)
        tiles = grid_tiles(range(shown_filters), cell_hw, 1, GAP, span=shown_channels)
    else:  # blocks of a filter's cells, a wider gap between filters
        blocks = [tile_grid(cells[f * shown_channels:(f + 1) * shown_channels], shown_channels)
                  for f in range(shown_filters)]
        image = tile_grid(blocks, per_row, gap=3 * GAP)
        tiles = grid_tiles(range(shown_filters), blocks[0].shape[:2], per_row, 3 * GAP)
    bad_filters = int((~np.isfinite(kernel)).any(axis=(0, 1, 2)).sum())
    return FilterGrid(image, shown_filters, filters, shown_channels, channels, bad_filters, kernel_scale(magnitude),
                      tiles)


def filter_rgb_grid(kernel: np.ndarray, max_filters: int = 64) -> np.ndarray | None:
    """Kernels that read 3 channels as colour tiles (8 to a row, numbered); None otherwise."""
    kh, kw, channels, filters = kernel.shape
    if channels != 3:
        return None
    unit, _ = unit_range(kernel)
    factor = max(_kernel_cell_factor(kh, kw), 48 // max(kh, kw))
    tiles = []
    for f in range(min(filters, max_filters)):
        tile = mark_nonfinite(to_uint8(unit[:, :, :, f]), kernel[:, :, :, f].sum(axis=-1))
        tile = np.repeat(np.repeat(tile, factor, axis=0), factor, axis=1)
        tiles.append(add_caption(tile, str(f)))
    return tile_grid(tiles, 8, gap=4)


@dataclass(frozen=True)
class FeatureGrid:
    image: np.ndarray
    channels_shown: int
    constant_channels: tuple[int, ...]
    nonfinite_channels: tuple[int, ...] = ()
    scale: ColourScale | None = None
    tiles: tuple[Tile, ...] = ()  # channel c is filter c's response


ACTIVATION = "activation (the unit's response)"


def feature_grid(fmap: np.ndarray, count: int = 64, columns: int = 8,
                 scale_with: np.ndarray | None = None) -> FeatureGrid:
    """Seed 002's 8x8 grid: the first ``count`` channels, on one shared scale (a nearly silent
    channel looks dark, not as bright as a strong one); the page numbers the tiles as text. With
    ``scale_with`` (another checkpoint's map of the same shape) both share one scale, so two grids
    compare too."""
    channels = min(count, fmap.shape[-1])
    if scale_with is None:
        unit, low, high = shared_unit(fmap[:, :, :channels])
    else:
        both, low, high = shared_unit(np.stack([fmap[:, :, :channels], scale_with[:, :, :channels]]))
        unit = both[0]
    tiles, constant, nonfinite = [], [], []
    for c in range(channels):
        values = fmap[:, :, c]
        bad = not np.isfinite(values).all()
        finite = values[np.isfinite(values)]
        if not bad and finite.size and finite.max() == finite.min():
            constant.append(c)
        if bad:
            nonfinite.append(c)
        tiles.append(scale_tile(mark_nonfinite(colorize(unit[:, :, c]), values), FEATURE_TILE))
    columns = max(1, min(columns, channels))
    return FeatureGrid(tile_grid(tiles, columns, gap=3), channels, tuple(constant), tuple(nonfinite),
                       ColourScale(SEQUENTIAL, low, high, ACTIVATION), grid_tiles(range(channels), tiles[0].shape[:2],
                                                                                  columns, 3))


def mean_map(fmap: np.ndarray, target: int = 224) -> tuple[np.ndarray, ColourScale]:
    """Seed 002's mean over all channels, coloured and scaled towards ``target`` pixels."""
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: a NaN, painted below
        mean = fmap.astype(np.float64).mean(axis=-1)
    unit, low, high = shared_unit(mean)
    return (scale_tile(mark_nonfinite(colorize(unit), mean), target),
            ColourScale(SEQUENTIAL, low, high, "mean activation over all channels"))


BELT_SCALE = ColourScale(GREY, -2.0, 2.0, "standard deviations from each channel's own mean")


@dataclass(frozen=True)
class Belt:
    image: np.ndarray
    channels: int
    constant_channels: int
    nonfinite_channels: int = 0  # standardised over their finite values; counted, not coloured


def belt(fmap: np.ndarray, per_row: int = BELT_ROW) -> Belt:
    """Seed 003's image belt, working: every channel standardised and laid side by side.

    Up to ``per_row`` channels make one strip; more wrap into rows of ``per_row``. Maps under
    BELT_TILE_MIN pixels are enlarged, maps over BELT_TILE_MAX shrunk, the rest kept as they are.
    """
    height, width, channels = fmap.shape
    side = max(height, width)
    standardised, constant = standardise_channels(np.moveaxis(fmap, -1, 0).reshape(channels, -1))
    tiles = []
    for tile in standardised.reshape(channels, height, width):
        if side < BELT_TILE_MIN or side > BELT_TILE_MAX:
            tile = scale_tile(tile, BELT_TILE_MIN if side < BELT_TILE_MIN else BELT_TILE_MAX)
        tiles.append(tile)
    nonfinite = int((~np.isfinite(fmap)).any(axis=(0, 1)).sum())
    return Belt(tile_grid(tiles, per_row, gap=1), channels, int(constant.sum()), nonfinite)


def mosaic(images: np.ndarray, labels: list[str], marked: list[bool] | None = None,
           columns: int = 8, margin: int = 5, target: int = 128) -> np.ndarray:
    """keras.io's stitched filters: tiles n to a row with 5 px margins, each captioned."""
    marked = marked or [False] * len(labels)
    tiles = []
    for image, label, mark in zip(images, labels, marked):
        tiles.append(add_caption(scale_tile(display_tile(image), target), label, marked=mark))
    return tile_grid(tiles, columns, gap=margin)


def display_tile(image: np.ndarray) -> np.ndarray:
    """A (H, W, C) uint8 model input as one picture: grey, RGB, or for any other C the first
    three channels as RGB (if C > 3) followed by every further channel as a grey panel."""
    channels = image.shape[-1]
    if channels == 1:
        return image[:, :, 0]
    if channels == 3:
        return image
    panels = [image[:, :, :3]] if channels > 3 else []
    panels += [_as_rgb(image[:, :, c]) for c in range(3 if channels > 3 else 0, channels)]
    return tile_grid(panels, columns=len(panels), gap=1)


# --------------------------------------------------------------------------- files


def save_png(image: np.ndarray, site_root: str, site_path: str, alt: str,
             scale: ColourScale | None = None, tiles: tuple[Tile, ...] = ()) -> ImageAsset:
    """Write ``image`` at ``site_root/site_path`` and describe it for the pages."""
    target = os.path.join(site_root, *site_path.split("/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    # zlib level 4: on ResNet50V2's 1,601 pictures 4.3 s against 6.9 s at 6, for 0.8 % more bytes
    encoded = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(encoded, format="PNG", compress_level=4)
    replace_file(target, encoded.getvalue())
    return ImageAsset(site_path, int(image.shape[1]), int(image.shape[0]), alt, scale, tuple(tiles))




def save_jpeg(image: np.ndarray, site_root: str, site_path: str, alt: str) -> ImageAsset:
    """A photograph: JPEG (a PNG of a photo is several times larger and no better to look at)."""
    target = os.path.join(site_root, *site_path.split("/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    encoded = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).convert("RGB").save(encoded, format="JPEG", quality=JPEG_QUALITY)
    replace_file(target, encoded.getvalue())
    return ImageAsset(site_path, int(image.shape[1]), int(image.shape[0]), alt)


def colormap_strip(name: str, width: int = 256, height: int = 1) -> np.ndarray:
    """The colour map as a left-to-right strip (the picture in a colour bar)."""
    return np.repeat(_colormap_lut(name)[None], height, axis=0)[:, np.linspace(0, 255, width).round().astype(int)]


# --------------------------------------------------------------------------- one filter at a time


def kernel_card(unit_kernel: np.ndarray, raw_kernel: np.ndarray, max_channels: int = 64, columns: int = 16,
                cell: int = 32) -> np.ndarray:
    """One filter's kernel, every input channel (up to ``max_channels``) as a cell of about
    ``cell`` pixels (a kernel pixel is never smaller than one screen pixel).

    ``unit_kernel`` is already scaled with the whole layer (``signed_unit``, as in the filter
    grid), so a card and the grid show the same colours.
    """
    kh, kw, channels = unit_kernel.shape
    factor = max(1, cell // max(kh, kw))
    cells = []
    for c in range(min(channels, max_channels)):
        cell = mark_nonfinite(colorize(unit_kernel[:, :, c], DIVERGING), raw_kernel[:, :, c])
        cells.append(np.repeat(np.repeat(cell, factor, axis=0), factor, axis=1))
    return tile_grid(cells, min(columns, len(cells)), gap=1)


def shrink_map(channel: np.ndarray, side: int) -> np.ndarray:
    """A float map reduced by whole-factor block means to at most ``side`` pixels a side."""
    factor = math.ceil(max(channel.shape) / side)
    if factor <= 1:
        return np.asarray(channel, np.float32)
    height, width = (channel.shape[0] // factor) * factor, (channel.shape[1] // factor) * factor
    blocks = np.asarray(channel[:height, :width], np.float64).reshape(height // factor, factor, width // factor, factor)
    with np.errstate(invalid="ignore", over="ignore"):
        return blocks.mean(axis=(1, 3)).astype(np.float32)


def map_strip(maps: list[np.ndarray], labels: list[str], target: int = 96) -> tuple[np.ndarray, ColourScale]:
    """The same filter's map on several images side by side, on one shared scale (so brighter
    means more active, image against image), each captioned."""
    unit, low, high = shared_unit(np.stack(maps))
    tiles = [add_caption(scale_tile(mark_nonfinite(colorize(unit[i]), channel), target), label)
             for i, (channel, label) in enumerate(zip(maps, labels))]
    return tile_grid(tiles, len(tiles), gap=3), ColourScale(SEQUENTIAL, low, high, ACTIVATION)


def thumbnail(tiles: list[np.ndarray], side: int = 56, columns: int = 2) -> np.ndarray:
    """A small square of the first few pictures (ascent tiles or kernels) for the index table."""
    return tile_grid([scale_tile(_as_rgb(t) if t.ndim == 2 else t, side) for t in tiles], columns, gap=1)


CLASS_ROW, CLASS_LABEL_WIDTH, CLASS_MARGIN = 14, 96, 6


@lru_cache(maxsize=4)
def _class_bars_frame(names: tuple[str, ...], width: int) -> Image.Image:
    """What every filter's class chart shares: the class names and the axis (text rendering was
    most of a chart's time, and a data set's charts all name the same classes)."""
    canvas = Image.new("RGB", (width, CLASS_ROW * len(names) + 16), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for position, name in enumerate(names):
        draw.text((2, position * CLASS_ROW + 1), name[:16], fill=(40, 40, 40), font=_font())
    axis_y = CLASS_ROW * len(names) + 1
    draw.line((CLASS_LABEL_WIDTH, axis_y, width - CLASS_MARGIN - 1, axis_y), fill=(90, 90, 90))
    return canvas


def class_bars(names: list[str], means: list[float], maxima: list[float], width: int = 300) -> np.ndarray:
    """A filter's response per class: a bar for the mean of its per-image maxima and a dark tick
    at the highest, one row a class, on one axis from min(0, lowest) to the highest value, with
    the axis's ends written under it (the chart's scale)."""
    row, label_width = CLASS_ROW, CLASS_LABEL_WIDTH
    values = [v for v in list(means) + list(maxima) if np.isfinite(v)]
    low, high = min([0.0] + values), max([0.0] + values)
    span = (high - low) or 1.0
    bar_width = width - label_width - CLASS_MARGIN
    canvas = _class_bars_frame(tuple(names), width).copy()
    draw = ImageDraw.Draw(canvas)

    def x_of(value: float) -> int:
        return label_width + int(round((value - low) / span * (bar_width - 1)))

    zero = x_of(0.0)
    for position, (mean, top) in enumerate(zip(means, maxima)):
        y = position * row
        if np.isfinite(mean):
            draw.rectangle((min(zero, x_of(mean)), y + 3, max(zero, x_of(mean)), y + row - 3), fill=(70, 130, 180))
        if np.isfinite(top):
            draw.rectangle((x_of(top) - 1, y + 1, x_of(top) + 1, y + row - 1), fill=(20, 20, 20))
    axis_y = row * len(names) + 1
    draw.text((label_width, axis_y + 2), f"{low:.3g}", fill=(40, 40, 40), font=_font())
    high_text = f"{high:.3g}"
    draw.text((label_width + bar_width - 6 * len(high_text), axis_y + 2), high_text, fill=(40, 40, 40), font=_font())
    return np.asarray(canvas)
