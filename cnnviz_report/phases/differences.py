"""Phase of a diff: the pictures only a comparison has.

Whatever is compared is drawn as a ``Triple``: A and B on one shared scale, so the same colour
means the same value in both and a change shows as a change of colour, and B − A on a diverging
scale centred on zero (white: unchanged), each with the numbers of its colour bar. So are drawn
every kernel of a layer, each changed filter's kernel and its map on the image where it changed
most, and the layer's feature maps on each image.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .. import paths, render
from ..diff_records import FilterDiffPictures, ImageDiff, Triple
from ..layers import LayerInfo

FEATURE_GRID_CHANNELS = 64  # as on the reports' layer pages
FILTER_KERNEL_CHANNELS = 64  # a filter's kernel shows at most this many input channels...
FILTER_KERNEL_COLUMNS = 8  # ...this many to a row, so a picture stays small beside its B and B − A
FILTER_MAP_SIDE = 48  # a filter's map is reduced to at most this many pixels a side...
FILTER_MAP_TARGET = 96  # ...and drawn at about this size


def _difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """B − A in float64 (float32 maps can overflow); inf − inf is NaN, painted magenta."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.asarray(b, np.float64) - np.asarray(a, np.float64)


def difference_map(fmap_a: np.ndarray, fmap_b: np.ndarray, target: int = 224) -> tuple[np.ndarray, render.ColourScale]:
    """Mean over channels of B - A, red where B responds more, blue where less, 0 white."""
    with np.errstate(invalid="ignore", over="ignore"):
        delta = _difference(fmap_a, fmap_b).mean(axis=-1)
    unit, magnitude = render.signed_unit(delta)
    picture = render.scale_tile(render.mark_nonfinite(render.colorize(unit, render.DIVERGING), delta), target)
    return picture, render.ColourScale(render.DIVERGING, -magnitude, magnitude,
                                       "B − A, mean activation over channels (red: B responds more)")


def difference_grid(delta: np.ndarray, count: int = FEATURE_GRID_CHANNELS, columns: int = 8
                    ) -> tuple[np.ndarray, render.ColourScale]:
    """B − A of the first ``count`` channels as the feature grid lays them out, on one diverging
    scale for all of them, so the channels that changed stand out from those that did not."""
    channels = min(count, delta.shape[-1])
    shown = delta[:, :, :channels]
    unit, magnitude = render.signed_unit(shown, percentile=render.KERNEL_PERCENTILE)
    tiles = [render.add_caption(render.scale_tile(render.mark_nonfinite(
        render.colorize(unit[:, :, c], render.DIVERGING), shown[:, :, c]), render.FEATURE_TILE), str(c))
        for c in range(channels)]
    return render.tile_grid(tiles, columns, gap=3), render.ColourScale(
        render.DIVERGING, -magnitude, magnitude,
        "B − A activation, one scale for every channel (red: B responds more; the largest 1 % at full colour)")


def draw_kernel_grids(info: LayerInfo, slug: str, kernel_a: np.ndarray, kernel_b: np.ndarray, max_filters: int,
                      root: str) -> Triple:
    """Every kernel of the layer: A's and B's grids, each on the scale of both, and B − A's grid."""
    grids = {side: render.filter_grid(mine, max_filters, scale_with=other)
             for side, mine, other in (("a", kernel_a, kernel_b), ("b", kernel_b, kernel_a))}
    a, b = (render.save_png(grid.image, root, paths.layer_asset(slug, f"filters-{side}"),
                            f"kernels of {info.name} in {side.upper()}, on the scale of both checkpoints", grid.scale)
            for side, grid in grids.items())
    delta_grid = render.filter_grid(_difference(kernel_a, kernel_b), max_filters)
    delta_scale = replace(delta_grid.scale, label="B − A weight (blue: lower in B, white: unchanged, red: higher; "
                                                  "the largest 1 % at full colour)")
    delta = render.save_png(delta_grid.image, root, paths.layer_asset(slug, "filters-delta"),
                            f"kernels of {info.name} in B minus in A", delta_scale)
    return Triple(a, b, delta)


def _kernel_picture(unit: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """One filter's kernel, its input channels laid out about square (so it stays legible as the
    index's thumbnail too), at most FILTER_KERNEL_COLUMNS cells a row, about 100 pixels a side."""
    columns = min(FILTER_KERNEL_COLUMNS, math.ceil(math.sqrt(min(raw.shape[-1], FILTER_KERNEL_CHANNELS))))
    return render.kernel_card(unit, raw, FILTER_KERNEL_CHANNELS, columns, cell=max(12, 96 // columns))


def draw_filter_kernels(info: LayerInfo, slug: str, kernel_a: np.ndarray, kernel_b: np.ndarray, numbers: list[int],
                        root: str) -> dict[int, Triple]:
    """Each filter of ``numbers``: its kernel in A and in B on the layer's scale of both checkpoints
    (the colours of the grids), and B − A on the filter's own scale (its bar gives the numbers)."""
    both = np.concatenate([kernel_a, kernel_b], axis=-1)
    unit_a, magnitude = render.signed_unit(kernel_a, both, render.KERNEL_PERCENTILE)
    unit_b, _ = render.signed_unit(kernel_b, both, render.KERNEL_PERCENTILE)
    pair_scale = replace(render.kernel_scale(magnitude), label="weight, A and B on one scale (blue negative, white 0, "
                                                               "red positive; the layer's largest 1 % at full colour)")
    name, triples = info.name, {}
    for number in numbers:
        pictures = {}
        for side, unit, kernel in (("a", unit_a, kernel_a), ("b", unit_b, kernel_b)):
            pictures[side] = render.save_png(
                _kernel_picture(unit[..., number], kernel[..., number]), root,
                paths.filter_asset(slug, number, f"kernel-{side}"),
                f"kernel of filter {number} of {name} in {side.upper()}, one cell per input channel", pair_scale)
        delta = _difference(kernel_a[..., number], kernel_b[..., number])
        unit_delta, delta_magnitude = render.signed_unit(delta)
        pictures["delta"] = render.save_png(
            _kernel_picture(unit_delta, delta), root, paths.filter_asset(slug, number, "kernel-delta"),
            f"kernel of filter {number} of {name} in B minus in A",
            render.ColourScale(render.DIVERGING, -delta_magnitude, delta_magnitude,
                               "B − A weight, this filter's own scale (red: higher in B)"))
        triples[number] = Triple(**pictures)
    return triples


def draw_filter_map(info: LayerInfo, slug: str, number: int, image_name: str, map_a: np.ndarray, map_b: np.ndarray,
                    root: str) -> Triple:
    """One filter's map on one image (H, W each) in A and B on one scale, and B − A."""
    small = {"a": render.shrink_map(map_a, FILTER_MAP_SIDE), "b": render.shrink_map(map_b, FILTER_MAP_SIDE)}
    both, low, high = render.shared_unit(np.stack([small["a"], small["b"]]))
    pair_scale = render.ColourScale(render.SEQUENTIAL, low, high, "activation, A and B on one scale")
    pictures = {}
    for position, side in enumerate(("a", "b")):
        tile = render.scale_tile(render.mark_nonfinite(render.colorize(both[position]), small[side]), FILTER_MAP_TARGET)
        pictures[side] = render.save_png(tile, root, paths.filter_asset(slug, number, f"map-{side}"),
                                         f"map of filter {number} of {info.name} on {image_name} in {side.upper()}",
                                         pair_scale)
    delta = _difference(small["a"], small["b"])
    unit, magnitude = render.signed_unit(delta)
    tile = render.scale_tile(render.mark_nonfinite(render.colorize(unit, render.DIVERGING), delta), FILTER_MAP_TARGET)
    pictures["delta"] = render.save_png(
        tile, root, paths.filter_asset(slug, number, "map-delta"),
        f"map of filter {number} of {info.name} on {image_name} in B minus in A",
        render.ColourScale(render.DIVERGING, -magnitude, magnitude, "B − A activation (red: B responds more)"))
    return Triple(**pictures)


def draw_filter_pictures(info: LayerInfo, slug: str, kernel_a: np.ndarray, kernel_b: np.ndarray, numbers: list[int],
                         kernel_changed: set[int], root: str, image_names: list[str], maps_a: np.ndarray | None,
                         maps_b: np.ndarray | None, image_of: dict[int, int]) -> tuple[FilterDiffPictures, ...]:
    """What each filter's anchor shows, in the order of ``numbers``: its kernel's triple when the
    kernel changed and, with images, its map's triple on image ``image_of[number]`` (where its
    response changed most)."""
    kernels = draw_filter_kernels(info, slug, kernel_a, kernel_b, [n for n in numbers if n in kernel_changed], root)
    pictures = []
    for number in numbers:
        response, image_name = None, ""
        if number in image_of:
            index = image_of[number]
            image_name = image_names[index]
            response = draw_filter_map(info, slug, number, image_name, maps_a[index, :, :, number],
                                       maps_b[index, :, :, number], root)
        pictures.append(FilterDiffPictures(number, kernels.get(number), response, image_name))
    return tuple(pictures)


def draw_image_diffs(info: LayerInfo, slug: str, image_names: list[str], maps_a: np.ndarray, maps_b: np.ndarray,
                     response_changes: np.ndarray, root: str) -> tuple[ImageDiff, ...]:
    """Per image (maps: (N, H, W, C)): A's and B's feature grids on one scale, B − A per channel,
    and B − A over the channels."""
    diffs = []
    for index, name in enumerate(image_names):
        fmap_a, fmap_b, image = maps_a[index], maps_b[index], paths.image_slug(index, name)
        grids = {"a": render.feature_grid(fmap_a, FEATURE_GRID_CHANNELS, scale_with=fmap_b),
                 "b": render.feature_grid(fmap_b, FEATURE_GRID_CHANNELS, scale_with=fmap_a)}
        pictures = {side: render.save_png(
            grid.image, root, paths.layer_asset(slug, f"fmaps-{side}", image),
            f"first {grid.channels_shown} feature maps of {info.name} for {name} in {side.upper()}, on the scale of both",
            replace(grid.scale, label=f"{grid.scale.label}, A and B on one scale")) for side, grid in grids.items()}
        delta, delta_scale = difference_grid(_difference(fmap_a, fmap_b))
        pictures["delta"] = render.save_png(delta, root, paths.layer_asset(slug, "fmaps-delta", image),
                                            f"feature maps of {info.name} for {name} in B minus in A", delta_scale)
        mean, mean_scale = difference_map(fmap_a, fmap_b)
        mean_asset = render.save_png(mean, root, paths.layer_asset(slug, "difference", image),
                                     f"mean feature map of {info.name} under B minus under A for {name}", mean_scale)
        diffs.append(ImageDiff(name, Triple(**pictures), mean_asset, float(response_changes[index])))
    return tuple(diffs)
