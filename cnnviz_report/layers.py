"""LayerInfo and ModelInfo: the plain records of a model's layers that every phase works from.

They hold no framework objects (the walk that makes them is ``analysis.keras_walk``). A layer is
found again in its model from its ``path`` (the names of the sub-models around it) and its name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

IMAGE_CONV_KINDS = ("conv2d", "depthwise", "separable", "transpose")


@dataclass(frozen=True)
class LayerInfo:
    """One row of the layer table. Conv layers carry what is needed to draw them."""

    index: int  # position in the walk; top-level indices equal model.layers indices
    name: str
    path: tuple[str, ...]  # names of the enclosing sub-models, outermost first
    depth: int
    type_name: str
    output_shape: tuple
    params: int
    kernel_shape: tuple | None = None  # separable convs: the depthwise kernel
    pointwise_shape: tuple | None = None  # separable convs only
    filters: int | None = None
    conv_kind: str | None = None
    data_format: str = "channels_last"
    receptive_field: tuple | None = None  # per spatial axis, in input pixels
    effective_stride: tuple | None = None  # per spatial axis, input pixels per output step
    is_submodel: bool = False
    not_drawn_reason: str | None = None  # conv layers whose images cannot be drawn
    # conv layers: the pointwise layers after it (same sub-model) that make its unit's response
    unit_layers: tuple[str, ...] = ()

    @property
    def is_conv(self) -> bool:
        return self.conv_kind is not None

    @property
    def unit_description(self) -> str:
        """``conv2d_93 → batch_normalization_93 → activation_93``: what the next layer sees."""
        return " → ".join((self.name,) + self.unit_layers)

    @property
    def qualified_name(self) -> str:
        return "/".join(self.path + (self.name,))

    @property
    def flops(self) -> int:
        """Multiply-adds x 2 of one forward pass of this conv layer for one input (an estimate)."""
        if not self.is_conv or not self.kernel_shape or not self.output_shape:
            return 0
        if not all(isinstance(d, int) for d in self.output_shape[1:]):
            return 0
        channels_axis = 1 if self.data_format == "channels_first" else -1
        spatial = math.prod(self.output_shape[1:]) // self.output_shape[channels_axis]
        # prod(kernel) is the cost per output position for every kind: depthwise kernels are
        # (kh, kw, in, multiplier); separable convs add their 1x1 pointwise kernel.
        per_position = math.prod(self.kernel_shape) + math.prod(self.pointwise_shape or (0,))
        return 2 * spatial * per_position

    @property
    def takes_images(self) -> bool:
        """Feature maps and gradient ascent apply (a 2-D conv reachable from an image input)."""
        return self.conv_kind in IMAGE_CONV_KINDS and self.not_drawn_reason is None


@dataclass(frozen=True)
class ModelInfo:
    name: str
    input_shape: tuple
    output_shape: tuple
    total_params: int
    trainable_params: int
    layers: tuple[LayerInfo, ...]

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def conv_layers(self) -> tuple[LayerInfo, ...]:
        return tuple(layer for layer in self.layers if layer.is_conv)
