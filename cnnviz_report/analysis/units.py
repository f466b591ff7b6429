"""What a conv filter's unit is: the conv's output followed by the per-channel pointwise layers
that consume it alone (BatchNormalization, ReLU, PReLU, ...), i.e. what the next layer sees.

OpenAI Microscope and lucid show a unit after its ReLU; in a ``conv -> BN -> ReLU`` model the
raw conv output is neither what the network passes on nor where "dead" can be judged. The
chain stops at a layer that mixes channels or positions, at a branch (more than one consumer),
at a keras.ops call, or at the end of the (sub-)model that holds the conv.

The *floor* of a unit is the value it takes, per channel, when its input is very negative, if
the chain saturates there (ReLU-like); ``None`` when it does not (linear, PReLU or LeakyReLU
with a slope, ELU's neighbours that keep moving). A filter is dead when its response sits at
its floor everywhere; a unit with no floor is never dead, only constant when it never changes.
"""

from __future__ import annotations

import numpy as np

from .keras_graph import conv_kind, first_node, functional_graph, graph_nodes, is_model, resolve_holder, \
    unit_operation
from .stand_ins import inference_stand_in

# Layers that act on each value (or each channel) alone, so they belong to the unit.
POINTWISE_LAYERS = {
    "BatchNormalization", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "ThresholdedReLU",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
    "GaussianDropout", "AlphaDropout", "Rescaling",
}
# keras.ops activations (their operations' class names), as the functions torch_walk follows.
POINTWISE_OPERATIONS = {
    "Relu", "Relu6", "LeakyRelu", "Elu", "Celu", "Selu", "Gelu", "Silu", "HardSilu", "Mish", "HardSigmoid",
    "Sigmoid", "Tanh", "Softplus", "HardTanh",
}
# Activation functions that mix channels (softmax over the channel axis): they end the chain.
MIXING_ACTIVATIONS = ("softmax", "log_softmax")
_VERY_NEGATIVE = (-1e4, -2e4)  # two inputs far below any real pre-activation


def _activation_name(function) -> str:
    return getattr(function, "__name__", str(function))


def _is_pointwise(layer) -> bool:
    """``layer`` (a layer, or a keras.ops call's operation) acts on each value or channel alone."""
    import keras

    name = type(layer).__name__
    if not isinstance(layer, keras.layers.Layer):
        return name in POINTWISE_OPERATIONS
    if name not in POINTWISE_LAYERS:
        return False
    if name == "Activation" and _activation_name(layer.activation) in MIXING_ACTIVATIONS:
        return False
    if name == "BatchNormalization":
        axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        return len(axis) == 1  # one statistic per channel
    return True


def unit_chains(model) -> dict[int, tuple[str, ...]]:
    """id(conv layer) -> names of the pointwise layers after it that make its unit, in order, for
    every conv layer of ``model`` and of nested models."""
    chains: dict[int, tuple[str, ...]] = {}
    nodes = graph_nodes(model)
    node_ids = {id(node) for node in nodes}
    consumers: dict[int, list] = {}
    for node in nodes:
        for tensor in node.input_tensors:
            consumers.setdefault(id(tensor), []).append(node)
    outputs = {id(t) for t in functional_graph(model).outputs}
    for layer in model.layers:
        if is_model(layer):
            chains.update(unit_chains(layer))
        if conv_kind(layer) is None:
            continue
        node = first_node(layer, node_ids)
        following = []
        if node is not None and len(node.output_tensors) == 1:
            tensor = node.output_tensors[0]
            while id(tensor) not in outputs:
                after = consumers.get(id(tensor), [])
                if len(after) != 1 or len(after[0].input_tensors) != 1 or not _is_pointwise(after[0].operation):
                    break
                following.append(after[0].operation.name)
                tensor = after[0].output_tensors[0]
        chains[id(layer)] = tuple(following)
    return chains


def unit_functions(model, info) -> list:
    """The callables that take the conv's pre-activation value to the unit's response: the conv's
    own activation, then each layer (or keras.ops call) of ``info.unit_layers``."""
    import keras

    holder = resolve_holder(model, info)
    activation = getattr(holder.get_layer(info.name), "activation", None)
    functions = [activation] if activation is not None else []
    for name in info.unit_layers:
        layer = unit_operation(holder, name)
        if isinstance(layer, keras.layers.Layer):
            layer = inference_stand_in(layer) or layer  # the same numbers, cheaper to trace
            functions.append(lambda x, layer=layer: layer(x, training=False))
        else:  # a keras.ops call: its operation, called again
            functions.append(lambda x, operation=layer: operation(x))
    return functions


def _constant(value: float, channels: int, channels_first: bool):
    import keras

    return keras.ops.full((1, channels, 1, 1) if channels_first else (1, 1, 1, channels), value, dtype="float32")


def _numpy(x) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(x), np.float64).reshape(-1)


def _saturated(values: list[np.ndarray]) -> bool:
    """Both equal, within a millionth of their size (a NaN, from NaN weights, is never saturated)."""
    if not (np.isfinite(values[0]).all() and np.isfinite(values[1]).all()):
        return False
    return bool(np.allclose(values[0], values[1], rtol=0.0, atol=1e-6 * (1.0 + np.abs(values[0]).max())))


def unit_floor(model, info) -> np.ndarray | None:
    """Per filter, the floor of ``info``'s unit response (None when it has none)."""
    functions = unit_functions(model, info)
    if not functions or not info.filters:
        return None
    return response_floor(functions, info.filters, info.data_format == "channels_first")


def response_floor(functions: list, channels: int, channels_first: bool = False) -> np.ndarray | None:
    """Per-channel value of the response when the conv's pre-activation is very negative, if the
    chain saturates there (the same value for two very negative inputs); None when it does not."""
    results = []
    for value in _VERY_NEGATIVE:
        x = _constant(value, channels, channels_first)
        for function in functions:
            x = function(x)
        results.append(_numpy(x))
    return results[0] if _saturated(results) else None


def rescue_split(functions: list, channels: int, channels_first: bool = False) -> int | None:
    """The position of the last function that saturates for very negative inputs: while the
    response is stuck at its floor, gradient ascent climbs that function's input instead (lucid's
    ``_pre_relu``, wherever the ReLU sits in the chain). None when none saturates."""
    last = None
    for position, function in enumerate(functions):
        if _saturated([_numpy(function(_constant(v, channels, channels_first))) for v in _VERY_NEGATIVE]):
            last = position
    return last
