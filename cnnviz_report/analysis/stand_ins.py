"""Inference stand-ins: layers that compute what a model's layer computes at inference, with
fewer ops to trace. Used by the ascent's replay of a model and by a unit's response chain.
"""

from __future__ import annotations

import functools

import numpy as np


def inference_stand_in(layer, dtype: str = "float32"):
    """A layer that computes what ``layer`` computes at inference, cheaper to trace, with the
    dtype policy ``dtype``; None if there is none.

    A BatchNormalization at inference is a fixed affine map per channel. Traced, Keras's layer
    reads and casts four variables and builds a dozen ops and their gradients: in ResNet50V2 it
    was half of all the time spent tracing ascent steps. The stand-in holds the map's two
    vectors, computed once by Keras's own formula (``ops.rsqrt``, as its layer does), so it gives the same
    numbers.

    A swish (silu) Activation is ``x * sigmoid(x)``, as Keras's silu computes it, without
    its custom gradient, whose tracing took a third of a deep EfficientNetB0 step's trace
    (1.59 s against 1.13 s a trace). The same forward values; the gradient is the same
    function, computed by the chain rule.
    """
    if getattr(layer, "compute_dtype", None) != "float32":
        return None
    if type(layer).__name__ == "Activation" and getattr(layer.activation, "__name__", "") in ("silu", "swish"):
        return _plain_swish()(name=f"{layer.name}_plain", dtype=dtype)
    if type(layer).__name__ != "BatchNormalization" or getattr(layer, "renorm", False) \
            or not isinstance(layer.axis, int) or layer.variable_dtype != "float32":
        return None
    return _frozen_batch_normalization().of(layer, dtype)


def bfloat16_twin(layer):
    """``layer`` computing in bfloat16 (Keras's mixed_bfloat16: weights kept in float32, copied
    from ``layer``), its inference stand-in where it has one; None where it cannot be rebuilt
    from its config (the replay then calls ``layer`` itself, in float32).

    A climb on a CPU with bfloat16 matrix units (AMX) runs its convolutions several times faster
    in bfloat16 (benchmarks/bf16_step.py); every layer of the replay is twinned, so activations
    stay bfloat16 between them instead of being cast back and forth.
    """
    stand_in = inference_stand_in(layer, dtype=BFLOAT16_POLICY)
    if stand_in is not None:
        return stand_in
    try:
        twin = type(layer).from_config(dict(layer.get_config(), dtype=BFLOAT16_POLICY, name=f"{layer.name}_bfloat16"))
        if layer.weights:
            twin.build(layer._inbound_nodes[0].input_tensors[0].shape)
            twin.set_weights(layer.get_weights())
    except Exception:  # a custom layer, or one whose weights depend on more than one input
        return None
    return twin


BFLOAT16_POLICY = "mixed_bfloat16"


@functools.cache
def _plain_swish():
    """The swish stand-in's class, made on first use (Keras is imported late)."""
    import keras

    class PlainSwish(keras.layers.Layer):
        """``x * sigmoid(x)``: a swish Activation whose gradient the backend derives itself."""

        def call(self, inputs, training=None, mask=None):
            return inputs * keras.ops.sigmoid(inputs)

        def compute_output_shape(self, input_shape):
            return input_shape

    return PlainSwish


@functools.cache
def _frozen_batch_normalization():
    """The stand-in's class, made on first use (Keras is imported late)."""
    import keras
    from keras import ops

    class FrozenBatchNormalization(keras.layers.Layer):
        """``x * scale + offset`` per channel: a BatchNormalization's inference, with constants."""

        def __init__(self, scale: np.ndarray, offset: np.ndarray, axis: int, **kwargs):
            super().__init__(**kwargs)
            self.scale, self.offset, self.axis = scale, offset, axis

        @classmethod
        def of(cls, layer, dtype: str = "float32"):
            mean = ops.convert_to_tensor(layer.moving_mean)
            inverse = ops.rsqrt(ops.convert_to_tensor(layer.moving_variance) + layer.epsilon)
            if layer.scale:
                inverse = inverse * ops.convert_to_tensor(layer.gamma)
            offset = ops.convert_to_tensor(layer.beta) - mean * inverse if layer.center else -mean * inverse
            return cls(ops.convert_to_numpy(inverse), ops.convert_to_numpy(offset), layer.axis,
                       name=f"{layer.name}_frozen", dtype=dtype)

        def call(self, inputs, training=None, mask=None):
            shape = [1] * len(inputs.shape)
            shape[self.axis] = self.scale.shape[0]
            scale = ops.convert_to_tensor(self.scale.reshape(shape), inputs.dtype)
            return inputs * scale + ops.convert_to_tensor(self.offset.reshape(shape), inputs.dtype)

        def compute_output_shape(self, input_shape):
            return input_shape

    return FrozenBatchNormalization
