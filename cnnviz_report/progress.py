"""A build's steps, planned once with their estimated cost, and the progress events they send.

Steps differ a thousandfold in cost (a filter grid against a deep layer's ascent), so an ETA
must come from the share of the estimated work done, not from the step count. The plan is a
list of ``Step(subject, phase, cost)`` in the order the build runs them; the build advances
through it, and a step it does not expect is a bug that fails loudly, not a silent default.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from .config import ReportConfig
from .layers import LayerInfo

# FLOP-equivalents a second of gradient ascent on a 2-core AVX2 CPU (measured: VGG16's default
# report 134e9, ResNet50V2's 89e9), the ETA's rate until the build's first ascent has run
ASSUMED_ASCENT_RATE = 1e11

IMAGES = "pictures and predictions"
KERNELS = "filters"
ASCENT = "gradient ascent"
PAGES = "pages"
ATTRIBUTION = "Grad-CAM and deciding units"
SITE = "site"  # the subject of the last step
DATASET, EXAMPLES = "data set", "dataset examples"
INPUTS = "images"  # the subject of the first
# A layer's pictures drawn and written as PNGs, in FLOP-equivalents (~0.05 s here). Measured on
# EfficientNetB0 with --ascent-steps 1 (benchmarks/eta_benchmark.py: each phase's share of the time against its
# share of the plan): at 2e10 the plan gave drawing 63 % of the work, which took 21 % of the time,
# and the ETA was 3-7x too short while its 14 ascent traces ran.
DRAWING_COST = 5e9
# Judging and drawing a layer's kernels also takes time by its weights: ResNet50V2's 53 layers
# (23.5 M weights) took 7.2 s, EfficientNetB0's 81 (4 M) 4.7 s, so about a drawing a 250,000.
WEIGHTS_PER_DRAWING = 250_000


def feature_phase(first: int, last: int) -> str:
    """The phase of one image batch's feature maps (images numbered from 1)."""
    return f"feature maps, images {first}-{last}"


@dataclass(frozen=True)
class Progress:
    """Step ``step`` of ``total`` is under way; ``subject`` is a layer name (or "site").

    ``work_done`` is the estimated share (0..1) of the whole build's work done so far; ``detail``
    says how far a long step has got (an ascent's filters).
    """

    step: int
    total: int
    subject: str
    phase: str
    work_done: float = 0.0
    detail: str = ""


@dataclass(frozen=True)
class Step:
    subject: str
    phase: str
    cost: float  # FLOP-equivalents


def image_batches(count: int, size: int) -> list[tuple[int, int]]:
    """(start, stop) of each batch of ``count`` images."""
    return [(start, min(count, start + size)) for start in range(0, count, size)]


def plan_steps(kernel_layers: list[LayerInfo], image_layers: list[LayerInfo], ascent_costs: dict[int, float],
               n_images: int, config: ReportConfig, model_flops: float = 0.0, dataset_images: int = 0) -> list[Step]:
    """Every step of a build in the order it runs: the images (a forward pass each for the
    predictions), kernels per layer, feature maps per image batch and layer (about the layer's
    FLOPs per image), ascent per layer (``ascent_costs``, by layer index, from the engine's own
    estimate), pages."""
    steps = [Step(INPUTS, IMAGES, n_images * (model_flops + DRAWING_COST))] if n_images else []
    steps += [Step(layer.qualified_name, KERNELS, DRAWING_COST * (1 + layer.params / WEIGHTS_PER_DRAWING))
              for layer in kernel_layers]
    for start, stop in image_batches(n_images, config.image_batch_size) if image_layers else ():
        steps += [Step(layer.qualified_name, feature_phase(start + 1, stop), (stop - start) * (layer.flops + DRAWING_COST))
                  for layer in image_layers]
    if dataset_images and image_layers:
        steps.append(Step(DATASET, EXAMPLES, sum(dataset_costs(dataset_images, image_layers, config, model_flops))))
    steps += [Step(layer.qualified_name, ASCENT, ascent_costs[layer.index])
              for layer in image_layers if layer.index in ascent_costs]
    if n_images and image_layers and config.explain:  # a forward and a gradient pass an image, a heatmap a layer
        steps.append(Step(INPUTS, ATTRIBUTION, n_images * (3 * model_flops + len(image_layers) * DRAWING_COST)))
    steps.append(Step(SITE, PAGES, DRAWING_COST * (1 + len(kernel_layers) / 2)))  # a layer's pages and cards
    return steps


def dataset_costs(images: int, layers: list[LayerInfo], config: ReportConfig, model_flops: float) -> tuple[float, float]:
    """(the pass, the crops) of the data-set step: a forward pass and a file read an image, then
    each card's crops, about 1 ms each (VGG16 here: 0.26 s an image, 30 s for 38,000 crops)."""
    crops = sum(min(layer.filters or 0, config.max_filters) for layer in layers) * config.dataset_top
    return images * (model_flops + DRAWING_COST / 10), crops * DRAWING_COST / 200


class StepTracker:
    """Advances through a plan and tells ``callback`` (if any) as each step starts and goes on."""

    def __init__(self, steps: list[Step], callback: Callable[[Progress], None] | None):
        self.steps = steps
        self.callback = callback
        self.total_cost = sum(step.cost for step in steps) or 1.0
        self.position = -1
        self.cost_before = 0.0
        self.step_started = time.monotonic()
        self.spent = {"ascent": [0.0, 0.0], "other": [0.0, 0.0]}  # per kind of step: [cost, seconds] of those done

    def advance(self, subject: str, phase: str) -> Callable[[float, str], None]:
        """Start the next step, which must be ``(subject, phase)``; returns a function that reports
        the share (0..1) of this step done so far, with a detail."""
        if self.position >= 0:
            self.cost_before += self.steps[self.position].cost
            self._spend(self.steps[self.position])
        self.position += 1
        step = self.steps[self.position] if self.position < len(self.steps) else None
        if step is None or (step.subject, step.phase) != (subject, phase):
            raise RuntimeError(f"progress plan out of step: expected {step}, got {(subject, phase)}")
        self._send(0.0, "")
        return self._send

    def _spend(self, step: Step) -> None:
        now = time.monotonic()
        kind = self.spent["ascent" if step.phase == ASCENT else "other"]
        kind[0] += step.cost
        kind[1] += now - self.step_started
        self.step_started = now

    def seconds_left(self, current_done: bool = False) -> float | None:
        """The time the rest of the plan should take (with the step under way, unless it has just
        ended), at the rate each kind of step has gone so far: gradient ascent is arithmetic at
        its own pace, drawing at another. Before any ascent has run, ascent is taken at
        ASSUMED_ASCENT_RATE; None before any step is done."""
        spent = {kind: list(values) for kind, values in self.spent.items()}
        current = self.steps[self.position] if 0 <= self.position < len(self.steps) else None
        if current is not None and current_done:
            kind = spent["ascent" if current.phase == ASCENT else "other"]
            kind[0] += current.cost
            kind[1] += time.monotonic() - self.step_started
        if spent["other"][1] <= 0.0 and spent["ascent"][1] <= 0.0:
            return None
        rates = {kind: cost / seconds if seconds >= 1.0 else None for kind, (cost, seconds) in spent.items()}
        rates["ascent"] = rates["ascent"] or ASSUMED_ASCENT_RATE
        rates["other"] = rates["other"] or rates["ascent"]
        remaining = self.steps[self.position + (1 if current_done else 0):] if self.position >= 0 else self.steps
        return sum(step.cost / rates["ascent" if step.phase == ASCENT else "other"] for step in remaining)

    def _send(self, share: float, detail: str) -> None:
        if self.callback is not None:
            step = self.steps[self.position]
            done = (self.cost_before + share * step.cost) / self.total_cost
            self.callback(Progress(self.position + 1, len(self.steps), step.subject, step.phase, done, detail))
