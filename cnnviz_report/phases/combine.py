"""The last phase of a layer: its phases' records joined into one ``LayerReport``, with its health."""

from __future__ import annotations

import numpy as np

from ..health import LayerHealth, activation_findings, floor_rule
from ..layers import LayerInfo
from ..records import ExamplePictures, FilterCard, KernelPictures, LayerReport, MosaicPictures, ResponsePictures


def filter_cards(kernels: KernelPictures, responses: ResponsePictures | None,
                 mosaic: MosaicPictures | None, examples: ExamplePictures | None = None) -> tuple[FilterCard, ...]:
    """One card per drawn kernel, with its ascent picture, image strip and dataset examples
    where they exist."""
    tiles = {tile.number: tile for tile in mosaic.tiles} if mosaic else {}
    found = {card.number: card for card in examples.cards} if examples else {}
    strips = {strip.number: strip for strip in responses.strips} if responses else {}
    cards = []
    for number, kernel in enumerate(kernels.kernel_cards):
        tile, strip = tiles.get(number), strips.get(number)
        cards.append(FilterCard(
            number, kernel,
            ascent=tile.picture if tile else None,
            ascent_quality=tile.quality if tile else None,
            ascent_dead=tile.dead if tile else False,
            maps=strip.maps if strip else None,
            top_images=strip.top_images if strip else (),
            examples=found.get(number)))
    return tuple(cards)


def layer_report(info: LayerInfo, slug: str, kernels: KernelPictures | None, responses: ResponsePictures | None,
                 mosaic: MosaicPictures | None, floor: np.ndarray | None, failure: str | None,
                 examples: ExamplePictures | None = None) -> LayerReport:
    """A layer that failed (``--keep-going``) keeps what it drew before, and no health verdicts."""
    if kernels is None:
        return LayerReport(info, slug, failure=failure)
    stats = responses.stats if responses else None
    dead, constant = activation_findings(stats.min if stats else None, stats.max if stats else None, floor,
                                         kernels.findings.nonfinite)
    health = None if failure else LayerHealth(info.filters or 0, kernels.findings, stats.images if stats else 0, dead, constant,
                         tuple(sorted(mosaic.dead)) if mosaic else (), floor_rule(floor),
                         mosaic.judged if mosaic else True)
    return LayerReport(
        info, slug,
        filters=kernels.filters, filters_rgb=kernels.filters_rgb, filters_depthwise=kernels.filters_depthwise,
        filter_note=kernels.note, filters_shown=kernels.filters_shown, channels_shown=kernels.channels_shown,
        channels_total=kernels.channels_total, nonfinite_filters=kernels.nonfinite_filters,
        mosaic=mosaic.mosaic if mosaic else None,
        mosaic_filters=len(mosaic.indices) if mosaic else 0,
        mosaic_dead=mosaic.dead if mosaic else (),
        ascent_judged=mosaic.judged if mosaic else True,
        mosaic_indices=mosaic.indices if mosaic else (),
        mosaic_canvas=mosaic.canvas if mosaic else None,
        features=responses.features if responses else (),
        thumbnail=mosaic.thumbnail if mosaic else kernels.thumbnail,
        cards=filter_cards(kernels, responses, mosaic, examples), dataset=examples,
        stats=stats, floor=floor, health=health, failure=failure)
