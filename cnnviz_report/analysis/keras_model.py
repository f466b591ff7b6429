"""A Keras model behind the seam (``seam.ModelWalk`` and ``seam.ModelRun``): each method hands the
work to the analysis that does it, so the rest of the report never holds a ``keras.Model``."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..layers import LayerInfo, ModelInfo
from .activations import FeatureProbe, PeakProbe, compiled_forward, reads_channels_first
from .ascent import AscentSettings, AscentTrunk
from .framework import without_gradients
from .attribution import AttributionProbe, ends_in_sigmoid
from .keras_walk import inspect_model, weights_digests
from .units import unit_floor
from .weights import KernelView, kernel_view


class KerasModel:
    """``model`` walked and run by Keras, on the backend this process runs (``framework``)."""

    def __init__(self, model):
        self.model = model

    # ------------------------------------------------------------------ the walk

    def inspect(self) -> ModelInfo:
        return inspect_model(self.model)

    def weights_digests(self, layers: tuple[LayerInfo, ...]) -> dict[int, str]:
        return weights_digests(self.model, layers)

    def kernel(self, info: LayerInfo) -> KernelView:
        return kernel_view(self.model, info)

    def unit_floor(self, info: LayerInfo) -> np.ndarray | None:
        return unit_floor(self.model, info)

    def input_shapes(self) -> list[tuple]:
        return [tuple(tensor.shape) for tensor in self.model.inputs]

    def output_shapes(self) -> list[tuple]:
        return [tuple(output.shape) for output in self.model.outputs]

    def ends_in_sigmoid(self) -> bool:
        return ends_in_sigmoid(self.model)

    # ------------------------------------------------------------------ the runs

    def feature_probe(self, layers: list[LayerInfo]) -> FeatureProbe:
        return FeatureProbe(self.model, layers)

    def peak_probe(self, layers: list[LayerInfo]) -> PeakProbe:
        return PeakProbe(self.model, layers)

    def class_scores(self) -> Callable[[np.ndarray], np.ndarray]:
        # channels-first convs run on the CPU only under XLA; anything else runs eagerly, since
        # tracing a deep model's whole graph for one pass costs more than the pass
        # (InceptionResNetV2: seconds)
        from keras import ops

        forward = compiled_forward(self.model) if reads_channels_first([self.model]) else \
            without_gradients(lambda x: self.model(x, training=False))
        return lambda x: ops.convert_to_numpy(forward(x))

    def attribution_probe(self, layers: list[LayerInfo], decision: list[LayerInfo], binary: bool) -> AttributionProbe:
        return AttributionProbe(self.model, layers, decision, binary=binary)

    def ascent_trunk(self, conv_layers: list[LayerInfo], input_hw: tuple[int, int], channels: int, preprocess,
                     settings: AscentSettings, channels_first: bool, targets: list[LayerInfo],
                     work: dict[int, int]) -> AscentTrunk:
        return AscentTrunk(self.model, conv_layers, input_hw, channels, preprocess, settings, channels_first,
                           targets=targets, work=work)
