"""Phase of a diff: the pictures only a comparison has (kernels of A and B on one shared scale,
the difference of their feature maps on the same images)."""

from __future__ import annotations

import numpy as np

from .. import paths, render
from ..inspection import LayerInfo
from ..records import ImageAsset


def difference_map(fmap_a: np.ndarray, fmap_b: np.ndarray, target: int = 224) -> tuple[np.ndarray, render.ColourScale]:
    """Mean over channels of B - A, red where B responds more, blue where less, 0 white."""
    with np.errstate(invalid="ignore", over="ignore"):
        delta = (np.asarray(fmap_b, np.float64) - np.asarray(fmap_a, np.float64)).mean(axis=-1)
    unit, magnitude = render.signed_unit(delta)
    picture = render.scale_tile(render.mark_nonfinite(render.colorize(unit, render.DIVERGING), delta), target)
    return picture, render.ColourScale(render.DIVERGING, -magnitude, magnitude,
                                       "B − A, mean activation over channels (red: B responds more)")


def draw_kernel_pair(info: LayerInfo, slug: str, kernel_a: np.ndarray, kernel_b: np.ndarray, max_filters: int,
                     root: str) -> tuple[ImageAsset, ImageAsset]:
    """A's and B's filter grids, each on the scale of both, so a change of scale shows."""
    grids = {side: render.filter_grid(mine, max_filters, scale_with=other)
             for side, mine, other in (("a", kernel_a, kernel_b), ("b", kernel_b, kernel_a))}
    return tuple(render.save_png(grid.image, root, paths.layer_asset(slug, f"filters-{side}"),
                                 f"kernels of {info.name} in {side.upper()}, on the scale of both checkpoints", grid.scale)
                 for side, grid in grids.items())


def draw_differences(info: LayerInfo, slug: str, image_names: list[str], maps_a: np.ndarray, maps_b: np.ndarray,
                     root: str) -> tuple[tuple[str, ImageAsset], ...]:
    """(image name, picture) of B's mean feature map minus A's, per image (maps: (N, H, W, C))."""
    pictures = []
    for index, name in enumerate(image_names):
        picture, scale = difference_map(maps_a[index], maps_b[index])
        pictures.append((name, render.save_png(
            picture, root, paths.layer_asset(slug, "difference", paths.image_slug(index, name)),
            f"mean feature map of {info.name} under B minus under A for {name}", scale)))
    return tuple(pictures)
