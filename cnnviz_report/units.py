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

from dataclasses import dataclass

import numpy as np

# Layers that act on each value (or each channel) alone, so they belong to the unit.
POINTWISE_LAYERS = {
    "BatchNormalization", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "ThresholdedReLU",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
    "GaussianDropout", "AlphaDropout", "Rescaling",
}
# Activation functions that mix channels (softmax over the channel axis): they end the chain.
MIXING_ACTIVATIONS = ("softmax", "log_softmax")
_VERY_NEGATIVE = (-1e4, -2e4)  # two inputs far below any real pre-activation


@dataclass(frozen=True)
class UnitChain:
    """The layers after a conv that make its unit's response, with names to show on the page."""

    conv: str  # the conv layer's name
    layers: tuple[str, ...]  # names of the pointwise layers that follow it, in order

    @property
    def last(self) -> str:
        return self.layers[-1] if self.layers else self.conv

    def describe(self) -> str:
        return " → ".join((self.conv,) + self.layers)


def _activation_name(function) -> str:
    return getattr(function, "__name__", str(function))


def _is_pointwise(layer) -> bool:
    name = type(layer).__name__
    if name not in POINTWISE_LAYERS:
        return False
    if name == "Activation" and _activation_name(layer.activation) in MIXING_ACTIVATIONS:
        return False
    if name == "BatchNormalization":
        axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        return len(axis) == 1  # one statistic per channel
    return True


def _consumers(graph_nodes, tensor) -> list:
    return [node for node in graph_nodes if any(t is tensor for t in node.input_tensors)]


def unit_chains(model) -> dict[int, UnitChain]:
    """id(conv layer) -> its UnitChain, for every conv layer of ``model`` and of nested models."""
    from .inspection import _first_node, _is_model, conv_kind, functional_graph, graph_nodes

    chains: dict[int, UnitChain] = {}
    nodes = graph_nodes(model)
    node_ids = {id(node) for node in nodes}
    outputs = {id(t) for t in functional_graph(model).outputs}
    for layer in model.layers:
        if _is_model(layer):
            chains.update(unit_chains(layer))
        if conv_kind(layer) is None:
            continue
        node = _first_node(layer, node_ids)
        following = []
        if node is not None and len(node.output_tensors) == 1:
            tensor = node.output_tensors[0]
            while id(tensor) not in outputs:
                consumers = _consumers(nodes, tensor)
                if len(consumers) != 1 or not _is_pointwise(consumers[0].operation):
                    break
                following.append(consumers[0].operation.name)
                tensor = consumers[0].output_tensors[0]
        chains[id(layer)] = UnitChain(layer.name, tuple(following))
    return chains


def unit_functions(holder, chain: UnitChain) -> list:
    """The callables that take the conv's pre-activation value to the unit's response: the conv's
    own activation, then each layer of the chain."""
    conv = holder.get_layer(chain.conv)
    activation = getattr(conv, "activation", None)
    functions = [activation] if activation is not None else []
    for name in chain.layers:
        layer = holder.get_layer(name)
        functions.append(lambda x, layer=layer: layer(x, training=False))
    return functions


def _constant(value: float, channels: int, channels_first: bool):
    import keras

    return keras.ops.full((1, channels, 1, 1) if channels_first else (1, 1, 1, channels), value, dtype="float32")


def _numpy(x) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(x), np.float64).reshape(-1)


def _saturated(values: list[np.ndarray]) -> bool:
    return bool(np.allclose(values[0], values[1], rtol=0.0, atol=1e-6 * (1.0 + np.abs(values[0]).max())))


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
