"""Phase: the user's images, as the site shows them (one original picture each)."""

from __future__ import annotations

from .. import paths, render
from ..loading import InputImage, file_sha256
from ..records import ImageReport


def draw_images(images: list[InputImage], root: str) -> list[ImageReport]:
    reports = []
    for image in images:
        slug = paths.image_slug(image.index, image.name)
        asset = render.save_png(image.original, root, paths.image_original(slug), f"input image {image.name}")
        reports.append(ImageReport(image.index, image.name, slug, image.source, file_sha256(image.source), asset))
    return reports
