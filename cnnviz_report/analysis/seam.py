"""The seam between a framework's model and the report: what *walks* a model (its layers, kernels,
units, the weights' digests) and what *runs* it (feature maps, peaks, class scores, gradients,
the ascent). Planning, caching, drawing, pages, diff, gallery and executors reach a model only
through these two interfaces (``LoadedModel.walk`` and ``LoadedModel.run``), so another framework
(a Keras backend other than TensorFlow, a PyTorch module) is one more class behind them.

Everything that crosses the seam is plain data: records from ``layers``, numpy arrays, and the
small result types of the analyses (``KernelView``, ``Peaks``, ``LayerEvidence``, ``BatchResult``).
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from ..layers import LayerInfo, ModelInfo
from .activations import Peaks
from .ascent import AscentSettings
from .attribution import LayerEvidence
from .weights import KernelView


class ModelWalk(Protocol):
    """What a model is made of, read without running it."""

    def inspect(self) -> ModelInfo:
        """Every layer, nested sub-models expanded, with shapes, kernels, receptive fields, units."""

    def weights_digests(self, layers: tuple[LayerInfo, ...]) -> dict[int, str]:
        """layer index -> digest of the configuration and weights of every layer up to it."""

    def kernel(self, info: LayerInfo) -> KernelView:
        """A conv layer's kernel as (kh, kw, in, out), whatever its kind."""

    def unit_floor(self, info: LayerInfo) -> np.ndarray | None:
        """Per filter, the value its unit sits at when the conv's input is very negative (None:
        the unit has no floor, so it is never dead)."""

    def input_shapes(self) -> list[tuple]:
        """The shape of each of the model's inputs, batch axis first (None where free)."""

    def output_shapes(self) -> list[tuple]:
        """The shape of each of the model's outputs, batch axis first (None where free)."""

    def ends_in_sigmoid(self) -> bool:
        """The one output unit is squashed by a sigmoid (a binary classifier's probability)."""


class ModelRun(Protocol):
    """What the report asks of a model by running it; inputs are what ``LoadedModel.model_input``
    gives, outputs numpy (channels last)."""

    def feature_probe(self, layers: list[LayerInfo]) -> Callable[[np.ndarray], dict[int, np.ndarray]]:
        """A function of a batch: layer index -> its feature maps, from one forward pass."""

    def peak_probe(self, layers: list[LayerInfo]) -> Callable[[np.ndarray], dict[int, Peaks]]:
        """A function of a batch: layer index -> each filter's peak response and where it is."""

    def class_scores(self) -> Callable[[np.ndarray], np.ndarray]:
        """A function of a batch: the model's output, as the model computes it at inference."""

    def attribution_probe(self, layers: list[LayerInfo], decision: list[LayerInfo], binary: bool
                          ) -> Callable[[np.ndarray, list[int]], list[dict[int, LayerEvidence]]]:
        """A function of a batch and one class per image: per image, per layer, Grad-CAM and the
        units' activation x gradient toward that class's score before the softmax."""

    def ascent_trunk(self, conv_layers: list[LayerInfo], input_hw: tuple[int, int], channels: int, preprocess,
                     settings: AscentSettings, channels_first: bool, targets: list[LayerInfo],
                     work: dict[int, int]):
        """The gradient-ascent engine of every target layer (``AscentTrunk``: layer engines that
        climb batches of filters into ``BatchResult``s)."""
