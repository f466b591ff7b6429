"""Feature maps of many layers from one forward pass per batch of images.

Keras only links an inner layer's output to the graph of the model that holds it, so a layer
inside a nested sub-model cannot be an output of the outer model. The probe is therefore staged:
one multi-output model per (sub-)model level, whose extra outputs are the inputs of the nested
models that hold wanted layers. Each stage computes only the part of the graph it needs, so the
whole probe still costs one forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..inspection import LayerInfo


def layer_output_tensor(layer):
    """The symbolic output of ``layer``'s first call (layers may be called more than once)."""
    if len(layer._inbound_nodes) == 1:
        return layer.output
    return layer._inbound_nodes[0].output_tensors[0]


def submodel_input_tensors(submodel) -> list:
    """The outer tensors a nested model is called on (its first call)."""
    return list(submodel._inbound_nodes[0].input_tensors)


@dataclass
class _Stage:
    model: object  # keras.Model from this level's inputs to [wanted outputs..., child inputs...]
    layer_slots: list  # (output position, LayerInfo)
    children: list = field(default_factory=list)  # (first position, count, _Stage)


def _build_stage(holder, targets: list[LayerInfo], depth: int) -> _Stage:
    import keras

    outputs, layer_slots, child_specs = [], [], []
    for info in targets:
        if len(info.path) == depth:
            layer_slots.append((len(outputs), info))
            outputs.append(layer_output_tensor(holder.get_layer(info.name)))
    child_names = sorted({info.path[depth] for info in targets if len(info.path) > depth})
    for child_name in child_names:
        child = holder.get_layer(child_name)
        inputs = submodel_input_tensors(child)
        child_specs.append((len(outputs), len(inputs), child))
        outputs.extend(inputs)
    stage = _Stage(keras.Model(holder.inputs, outputs), layer_slots)
    for start, count, child in child_specs:
        inner = [t for t in targets if len(t.path) > depth and t.path[depth] == child.name]
        stage.children.append((start, count, _build_stage(child, inner, depth + 1)))
    return stage


def _channels_last(array: np.ndarray, info: LayerInfo) -> np.ndarray:
    if info.data_format == "channels_first":
        return np.moveaxis(array, 1, -1)
    return array


def _run(stage: _Stage, inputs: list, results: dict) -> None:
    outputs = stage.model(inputs, training=False)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    for position, info in stage.layer_slots:
        results[info.index] = _channels_last(np.asarray(outputs[position], dtype=np.float32), info)
    for start, count, child in stage.children:
        _run(child, list(outputs[start : start + count]), results)


class FeatureProbe:
    """Maps a batch of model inputs to {layer index: (N, H, W, C) float32 feature maps}."""

    def __init__(self, model, layers: list[LayerInfo]):
        self._stage = _build_stage(model, list(layers), 0)

    def __call__(self, batch: np.ndarray) -> dict[int, np.ndarray]:
        results: dict[int, np.ndarray] = {}
        _run(self._stage, [batch], results)
        return results


def layer_chain(model, info: LayerInfo, pre_activation: bool = False) -> list:
    """Callables whose composition maps the model input to ``info``'s output (for gradients).

    With ``pre_activation`` the last link is a copy of the layer with a linear activation, so
    the chain ends at the value before the layer's own activation (lucid's ``_pre_relu``).
    """
    import keras

    chain, holder = [], model
    for name in info.path:
        child = holder.get_layer(name)
        inputs = submodel_input_tensors(child)
        if len(inputs) != 1:
            raise ValueError(f"{info.qualified_name}: sub-model {name} has {len(inputs)} inputs")
        chain.append(keras.Model(_single_input(holder), inputs[0]))
        holder = child
    layer = holder.get_layer(info.name)
    linear_copy = _linear_copy(layer) if pre_activation else None
    if linear_copy is None:
        chain.append(keras.Model(_single_input(holder), layer_output_tensor(layer)))
    else:
        node = layer._inbound_nodes[0]
        chain.append(keras.Model(_single_input(holder), node.input_tensors[0]))
        chain.append(linear_copy)
    return chain


def ascent_chain(model, info: LayerInfo) -> tuple[list, object]:
    """(chain to the pre-activation value, the layer's activation) or (chain to output, None)."""
    chain = layer_chain(model, info, pre_activation=True)
    if getattr(chain[-1], "name", "").endswith("_pre_activation"):
        holder = model
        for name in info.path:
            holder = holder.get_layer(name)
        return chain, holder.get_layer(info.name).activation
    return chain, None


def _single_input(holder):
    """The one input tensor of a (sub-)model, so chain links take a bare tensor."""
    if len(holder.inputs) != 1:
        raise ValueError(f"{holder.name} has {len(holder.inputs)} inputs; gradients need exactly one")
    return holder.inputs[0]


def _linear_copy(layer):
    """The same layer with activation 'linear' and the same weights; None if it has none to drop."""
    import keras

    activation = getattr(layer, "activation", None)
    if activation is None or activation is keras.activations.linear:
        return None
    try:
        config = dict(layer.get_config(), activation="linear", name=f"{layer.name}_pre_activation")
        copy = type(layer).from_config(config)
        copy.build(layer._inbound_nodes[0].input_tensors[0].shape)
        copy.set_weights(layer.get_weights())
    except Exception:  # a custom layer that cannot be rebuilt from its config
        return None
    return copy
