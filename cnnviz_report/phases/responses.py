"""Phase: what each layer makes of the user's images.

Images arrive in batches (one forward pass of the feature probe for every layer), so each
layer's ``ResponseCollector`` takes one image at a time and keeps only what it needs: the
per-channel numbers and, for each card, the small maps of the images that excite it most.
``finish`` draws the cards' strips and returns the layer's ``ResponsePictures``.
"""

from __future__ import annotations

import numpy as np

from .. import paths, render
from ..layers import LayerInfo
from ..records import CardStrip, ChannelStats, FeatureAssets, ImageReport, ImageStat, ResponsePictures

FEATURE_GRID_CHANNELS = 64
CARD_TOP_IMAGES = 8  # a filter card shows the images that excite the filter most, at most this many
CARD_MAP_SIDE = 48  # their maps are kept (and drawn) at most this many pixels a side


class ResponseCollector:
    """One layer's pictures and numbers, image by image."""

    def __init__(self, info: LayerInfo, slug: str, card_numbers: range):
        self.info, self.slug, self.card_numbers = info, slug, card_numbers
        self.features: list[FeatureAssets] = []
        self.rows: dict[str, list[np.ndarray]] = {"mean": [], "min": [], "max": [], "active": []}
        self.candidates: dict[int, list[tuple[float, int, np.ndarray]]] = {}  # card -> [(mean, image, small map)]

    def add(self, image: ImageReport, fmap: np.ndarray, root: str) -> None:
        """Draw the layer's pictures for one image (H, W, C map) and record its numbers."""
        self._record(image.index, fmap)
        name = self.info.name
        # as many channels as there are cards (--max-filters), so every tile links to one
        grid = render.feature_grid(fmap, min(FEATURE_GRID_CHANNELS, len(self.card_numbers) or FEATURE_GRID_CHANNELS))
        strip = render.belt(fmap)
        mean, mean_scale = render.mean_map(fmap)
        self.features.append(FeatureAssets(
            image_index=image.index,
            grid=render.save_png(grid.image, root, paths.layer_asset(self.slug, "fmaps", image.slug),
                                 f"first {grid.channels_shown} feature maps of {name} for {image.name}", grid.scale,
                                 grid.tiles),
            mean=render.save_png(mean, root, paths.layer_asset(self.slug, "mean", image.slug),
                                 f"mean feature map of {name} for {image.name}", mean_scale),
            belt=render.save_png(strip.image, root, paths.layer_asset(self.slug, "belt", image.slug),
                                 f"all {strip.channels} standardised channels of {name} for {image.name}",
                                 render.BELT_SCALE),
            channels=strip.channels,
            grid_channels=grid.channels_shown,
            constant_channels=strip.constant_channels,
            nonfinite_channels=strip.nonfinite_channels,
        ))

    def _record(self, image_index: int, fmap: np.ndarray) -> None:
        values = np.asarray(fmap, np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            mean = values.mean(axis=(0, 1))
            self.rows["mean"].append(mean)
            self.rows["min"].append(values.min(axis=(0, 1)))
            self.rows["max"].append(values.max(axis=(0, 1)))
            self.rows["active"].append((values > 0).mean(axis=(0, 1)))
        for number in self.card_numbers:
            if number >= values.shape[-1]:  # a separable layer's depthwise kernels outnumber its outputs
                continue
            kept = self.candidates.setdefault(number, [])
            kept.append((float(mean[number]), image_index, render.shrink_map(fmap[:, :, number], CARD_MAP_SIDE)))
            kept.sort(key=lambda item: (-item[0] if np.isfinite(item[0]) else np.inf, item[1]))
            del kept[CARD_TOP_IMAGES:]

    def finish(self, root: str) -> ResponsePictures:
        """Each card's strip (its filter on the images that excite it most, on one shared scale)."""
        stats = ChannelStats(*(np.vstack(self.rows[key]) for key in ("mean", "min", "max", "active")))
        strips = []
        for number in self.card_numbers:
            kept = self.candidates.get(number, [])
            if not kept:
                continue
            top = tuple(ImageStat(index, mean, float(stats.max[index, number]), float(stats.active[index, number]))
                        for mean, index, _ in kept)
            strip, scale = render.map_strip([m for _, _, m in kept], [f"image {s.image_index + 1}" for s in top])
            maps = render.save_png(strip, root, paths.filter_asset(self.slug, number, "maps"),
                                   f"filter {number} of {self.info.name} on the {len(kept)} images that excite it most",
                                   scale)
            strips.append(CardStrip(number, maps, top))
        return ResponsePictures(tuple(self.features), stats, tuple(strips))
