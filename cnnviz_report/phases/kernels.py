"""Phase: what a layer's weights alone show (every filter's kernel, drawn or not, is judged)."""

from __future__ import annotations

from .. import paths, render
from ..health import kernel_findings
from ..analysis.seam import ModelWalk
from ..layers import LayerInfo
from ..records import KernelPictures

THUMBNAIL_KERNELS = 4


def draw_kernels(walk: ModelWalk, info: LayerInfo, slug: str, max_filters: int, root: str,
                 thumbnail: bool = True) -> KernelPictures:
    """The filter grids and one kernel picture per card; the index thumbnail from the first
    kernels only when ``thumbnail`` (a layer with a mosaic shows its ascent pictures instead)."""
    view = walk.kernel(info)
    grid = render.filter_grid(view.kernel, max_filters=max_filters)
    name = info.name
    filters = render.save_png(grid.image, root, paths.layer_asset(slug, "filters"),
                              f"kernels of {name}: each filter a row of cells, one per input channel", grid.scale,
                              grid.tiles)
    rgb = render.filter_rgb_grid(view.kernel, max_filters=max_filters)
    if rgb is not None:
        rgb = render.save_png(rgb, root, paths.layer_asset(slug, "filters-rgb"), f"kernels of {name} as colour tiles")
    depthwise = None
    if view.depthwise is not None:
        depthwise_grid = render.filter_grid(view.depthwise, max_filters=max_filters)
        depthwise = render.save_png(
            depthwise_grid.image, root, paths.layer_asset(slug, "filters-depthwise"),
            f"depthwise kernels of {name}: one row per input channel (times the depth multiplier)", depthwise_grid.scale)
    unit, _ = render.signed_unit(view.kernel, percentile=render.KERNEL_PERCENTILE)
    cards = tuple(render.save_png(render.kernel_card(unit[..., number], view.kernel[..., number]), root,
                                  paths.filter_asset(slug, number, "kernel"),
                                  f"kernel of filter {number} of {name}, one cell per input channel", grid.scale)
                  for number in range(grid.filters_shown))
    thumb = None
    if thumbnail:
        first = [render.kernel_card(unit[..., number], view.kernel[..., number], 1)
                 for number in range(min(THUMBNAIL_KERNELS, grid.filters_shown))]
        thumb = render.save_png(render.thumbnail(first), root, paths.layer_asset(slug, "thumb"),
                                f"the first kernels of {name}")
    return KernelPictures(filters, rgb, depthwise, view.note, grid.filters_shown, grid.channels_shown,
                          grid.channels_total, grid.nonfinite_filters, cards, thumb, kernel_findings(view.kernel, view.input_sets))
