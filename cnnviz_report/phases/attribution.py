"""Phase: why the model said it, per image (after the predictions and the feature maps).

For each image's class (its top prediction, or ``--class``): Grad-CAM at every conv layer drawn
over the input the model saw, and the units of the last conv layers whose activation x gradient
adds most to the class score, each with where in the image it did so. A model without one score
per class (a feature extractor, a regression head) gets a note instead, never an error. A
one-unit binary classifier explains class 1 by its logit and class 0 by the logit's negative.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import groupby
from typing import Callable

import numpy as np

from .. import paths, render
from ..analysis.attribution import center_of_mass
from ..errors import UsageError
from ..layers import LayerInfo
from ..loading import InputImage, LoadedModel
from ..progress import image_batches
from .predictions import ClassOutput, class_label, one_unit
from ..records import DecisionUnit, GradCam, ImageAttribution, ImageReport

DECISION_LAYERS = 3  # the units that made the decision are looked for in this many last conv layers
DECISION_UNITS = 6  # and this many are shown, best first
GRADCAM_SCALE = "Grad-CAM: evidence for the class (0 = none)"
WHERE_SCALE = "activation x gradient (where the unit added to the class score)"


def no_class_note(loaded: LoadedModel) -> str:
    """What an image page says instead of an explanation when the model has no class scores."""
    shapes = loaded.walk.output_shapes()
    shape = shapes[0] if len(shapes) == 1 else f"{len(shapes)} outputs"
    if one_unit(loaded):  # neither a sigmoid nor --labels with two names: read as a regression head
        return (f"{loaded.name} has no class output (its output is {shape}: one unit without a sigmoid, read as "
                "a regression head), so there is no class to explain. If the unit is a binary classifier's "
                "logit, give --labels with its two class names (class 0, then class 1).")
    return (f"{loaded.name} has no class output (its output is {shape}, not one score per class), "
            "so there is no class to explain.")


def resolve_class(requested: str | None, names: tuple[str, ...] | None, classes: int) -> int | None:
    """``--class NAME|INDEX`` as an output index (None: each image's top class)."""
    if requested is None:
        return None
    if requested.strip().isdigit():
        index = int(requested)
        if index >= classes:
            raise UsageError("--class", f"{index} is not a class of the model (it has {classes})")
        return index
    wanted = requested.strip().lower()
    matches = [i for i, name in enumerate(names or ()) if name.lower() == wanted]
    if not matches:
        raise UsageError("--class", f"{requested!r} is not a class name of the model (give a name or an index)")
    return matches[0]


def decision_layers(layers: list[LayerInfo]) -> list[LayerInfo]:
    """The last conv layers with a spatial map: where the decision is looked for."""
    return sorted(layers, key=lambda info: info.index)[-DECISION_LAYERS:]


def heat_peak(heatmap: np.ndarray) -> float:
    """The top of a heatmap's scale: its maximum, 0 when it is empty or not finite (drawn blank)."""
    return float(heatmap.max()) if heatmap.size and np.isfinite(heatmap).all() else 0.0


def gradcam_picture(pixels: np.ndarray, heatmap: np.ndarray, alpha_max: float = 0.6) -> np.ndarray:
    """``heatmap`` (any size, >= 0) stretched over the input the model saw: coloured where it is
    high, the photo showing through where it is low."""
    from PIL import Image

    height, width = pixels.shape[:2]
    peak = heat_peak(heatmap)
    unit = heatmap / peak if peak > 0 else np.zeros_like(heatmap)
    big = np.asarray(Image.fromarray(unit.astype(np.float32)).resize((width, height), Image.BILINEAR), np.float64)
    big = big.clip(0.0, 1.0)
    colour = render.colorize(big).astype(np.float64)
    photo = pixels.astype(np.float64)
    photo = np.repeat(photo, 3, axis=-1) if photo.shape[-1] == 1 else photo[..., :3]
    weight = (0.15 + alpha_max * big)[..., None]
    return (photo * (1 - weight) + colour * weight).round().clip(0, 255).astype(np.uint8)


def _save(picture: np.ndarray, root: str, path: str, alt: str, high: float, label: str):
    """A heatmap over a photograph: a JPEG (5x faster to write than a PNG, and smaller), with its scale."""
    asset = render.save_jpeg(render.scale_tile(picture, render.FEATURE_TILE * 2), root, path, alt)
    return replace(asset, scale=render.ColourScale(render.SEQUENTIAL, 0.0, high, label))


class Explainer:
    """Each image's evidence, drawn as it comes (one forward and one gradient per image batch)."""

    def __init__(self, loaded: LoadedModel, layers: list[LayerInfo], slugs: dict[int, str],
                 carded: dict[int, int], class_names: tuple[str, ...] | None, requested: int | None,
                 output: ClassOutput | None = None):
        self.loaded, self.layers, self.slugs, self.carded = loaded, sorted(layers, key=lambda i: i.index), slugs, carded
        self.names, self.requested = class_names, requested
        self.binary = bool(output and output.binary)  # class 1 explained by the logit, class 0 by its negative
        self.decision = decision_layers(self.layers)
        self.probe = loaded.run.attribution_probe(self.layers, self.decision, self.binary)
        self.layer_cams: dict[int, list[GradCam]] = {info.index: [] for info in self.layers}

    def explain(self, images: list[InputImage], reports: list[ImageReport], batch_size: int,
                root: str) -> dict[int, ImageAttribution]:
        found = {}
        for start, stop in image_batches(len(images), batch_size):
            batch = images[start:stop]
            classes = [self._class_of(reports[image.index]) for image in batch]
            evidence = self.probe(self.loaded.model_input(np.stack([image.pixels for image in batch])), classes)
            for image, target, layers in zip(batch, classes, evidence):
                found[image.index] = self._draw(image, reports[image.index], target, layers, root)
        return found

    def _class_of(self, report: ImageReport) -> int:
        if self.requested is not None:
            return self.requested
        return report.predictions[0].index

    def _draw(self, image: InputImage, report: ImageReport, target: int, layers: dict, root: str) -> ImageAttribution:
        label = class_label(self.names, target)
        probability = next((p.probability for p in report.predictions if p.index == target), None)
        cams = {}
        for info in self.layers:
            cam = layers[info.index].cam
            picture = gradcam_picture(image.pixels, cam)
            asset = _save(picture, root, paths.layer_asset(self.slugs[info.index], "gradcam", report.slug, ".jpg"),
                          f"Grad-CAM of {info.name} for {label} on {report.name}", heat_peak(cam), GRADCAM_SCALE)
            cams[info.index] = GradCam(info.index, report.index, asset, center_of_mass(cam), cam.astype(np.float32))
            self.layer_cams[info.index].append(cams[info.index])
        return ImageAttribution(target, label, probability, cams[self.layers[-1].index],
                                self._units(image, report, layers, label, root),
                                ("logit" if target == 1 else "-logit") if self.binary else "")

    def _units(self, image: InputImage, report: ImageReport, layers: dict, label: str, root: str):
        """The units with the largest shares of their layer's positive contributions (a unit that
        adds nothing, or takes away, did not make the decision): each layer's units together carry
        (to first order) the whole class score, so shares compare across layers."""
        positive = {info.index: float(np.nan_to_num(layers[info.index].contributions).clip(min=0).sum()) or 1.0
                    for info in self.decision}
        ranked = sorted(((float(c) / positive[info.index], float(c), info, number) for info in self.decision
                         for number, c in enumerate(layers[info.index].contributions) if np.isfinite(c) and c > 0),
                        key=lambda item: (-item[0], item[2].index, item[3]))
        units = []
        for share, contribution, info, number in ranked[:DECISION_UNITS]:
            where = layers[info.index].where[:, :, number].clip(min=0)
            asset = _save(gradcam_picture(image.pixels, where), root,
                          paths.unit_asset(report.slug, info.index, number),
                          f"where filter {number} of {info.name} added to {label} on {report.name}",
                          heat_peak(where), WHERE_SCALE)
            units.append(DecisionUnit(info.index, info.qualified_name, number, contribution,
                                      share, asset, number < self.carded.get(info.index, 0)))
        return tuple(units)


def climb_uncarded(found: dict[int, ImageAttribution], engine_of: Callable, slugs: dict[int, str],
                   root: str) -> dict[int, ImageAttribution]:
    """Give each deciding unit without a card (past --max-filters) its gradient-ascent picture,
    climbed as its card's would be (a filter's picture does not depend on its batch), so every
    unit behind a prediction is shown by what it responds to. ``engine_of(layer index)``: the
    layer's ascent engine."""
    wanted = sorted({(unit.layer_index, unit.number) for attribution in found.values()
                     for unit in attribution.units if not unit.has_card})
    pictures = {}
    for layer_index, pairs in groupby(wanted, key=lambda pair: pair[0]):
        numbers = [number for _, number in pairs]
        result = engine_of(layer_index).run(numbers)
        for number, image in zip(numbers, result.images):
            pictures[(layer_index, number)] = render.save_png(
                render.scale_tile(render.display_tile(image), 128), root,
                paths.filter_asset(slugs[layer_index], number, "ascent"), f"gradient-ascent image of filter {number}")
    return {index: replace(attribution, units=tuple(replace(unit, ascent=pictures.get((unit.layer_index, unit.number)))
                                                    for unit in attribution.units))
            for index, attribution in found.items()}
