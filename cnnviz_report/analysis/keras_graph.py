"""Navigating a Keras model's graph: conv kinds, sub-models, call nodes, and finding a layer again
from a record's ``path`` and ``name``. Shared by the walk (``keras_walk``), the units (``units``)
and the TensorFlow analyses, so none of them reaches into another's private helpers.
"""

from __future__ import annotations

CONV_KINDS = {
    # class name -> kind; subclasses are found through the MRO
    "Conv1D": "conv1d",
    "Conv2D": "conv2d",
    "Conv3D": "conv3d",
    "DepthwiseConv1D": "depthwise1d",
    "DepthwiseConv2D": "depthwise",
    "SeparableConv1D": "separable1d",
    "SeparableConv2D": "separable",
    "Conv1DTranspose": "transpose1d",
    "Conv2DTranspose": "transpose",
    "Conv3DTranspose": "transpose3d",
}


def conv_kind(layer) -> str | None:
    for cls in type(layer).__mro__:
        kind = CONV_KINDS.get(cls.__name__)
        if kind and cls.__module__.startswith("keras"):
            return kind
    return None


def is_model(layer) -> bool:
    import keras

    return isinstance(layer, keras.Model)


def functional_graph(model):
    """The Functional graph behind a Functional or a Sequential model."""
    return getattr(model, "_functional", None) or model


def graph_nodes(model) -> list:
    """Every call node of ``model``'s graph in topological order, keras.ops calls included
    (``x + y`` in a functional model is a node whose operation is not in ``model.layers``)."""
    by_depth = getattr(functional_graph(model), "_nodes_by_depth", None) or {}
    return [node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth] if not node.is_input]


def first_node(layer, graph_node_ids: set):
    """The first call of ``layer`` that belongs to the graph being walked."""
    for node in layer._inbound_nodes:
        if id(node) in graph_node_ids:
            return node
    return None


def resolve_holder(model, info):
    """The (sub-)model that holds ``info``'s layer."""
    holder = model
    for name in info.path:
        holder = holder.get_layer(name)
    return holder


def unit_operation(holder, name: str):
    """The layer of ``holder`` called ``name``, or the operation of a keras.ops call in its graph
    (a unit's activation may be written either way)."""
    for operation in getattr(holder, "operations", ()):
        if operation.name == name:
            return operation
    return holder.get_layer(name)


def resolve_layer(model, info):
    """The live Keras layer behind ``info``."""
    return resolve_holder(model, info).get_layer(info.name)


def nested_layers(layers):
    """``layers`` and, recursively, every layer inside those that are models."""
    for layer in layers:
        yield layer
        yield from nested_layers(getattr(layer, "layers", ()))
