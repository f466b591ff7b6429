"""Phase: the user's images, as the site shows them (one original picture each)."""

from __future__ import annotations

import numpy as np

from .. import paths, render
from ..loading import InputImage, file_sha256
from ..records import ImageReport


THUMBNAIL_SIDE = 160


def draw_images(images: list[InputImage], root: str) -> list[ImageReport]:
    """Each image's original (a JPEG: it is a photograph, and a PNG of it weighs ten times more)
    and the input the model saw, resized to its input size (the maps line up with this one)."""
    reports = []
    for image in images:
        slug = paths.image_slug(image.index, image.name)
        original = render.save_jpeg(image.original, root, paths.image_original(slug), f"input image {image.name}")
        seen = render.save_png(render.display_tile(np.clip(image.pixels, 0, 255).round().astype(np.uint8)), root,
                               paths.image_input(slug), f"{image.name} as the model saw it")
        small = render.scale_tile(image.original, THUMBNAIL_SIDE)
        thumbnail = render.save_jpeg(small, root, paths.image_thumbnail(slug), f"{image.name}, small")
        reports.append(ImageReport(image.index, image.name, slug, image.source, file_sha256(image.source), original,
                                   seen, thumbnail))
    return reports
