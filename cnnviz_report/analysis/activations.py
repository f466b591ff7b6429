"""Feature maps of many layers from one forward pass per batch of images.

Keras only links an inner layer's output to the graph of the model that holds it, so a layer
inside a nested sub-model cannot be an output of the outer model. The probe is therefore staged:
one multi-output model per (sub-)model level, whose extra outputs are the inputs of the nested
models that hold wanted layers. Each stage computes only the part of the graph it needs, so the
whole probe still costs one forward pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..layers import LayerInfo
from .framework import backend_name, compile_function, without_gradients
from .keras_graph import functional_graph, graph_nodes, nested_layers, resolve_layer, unit_operation
from .stand_ins import BFLOAT16_POLICY, bfloat16_twin, inference_stand_in

# TensorFlow graph mode only accepts these characters in name scopes, and Keras opens one per
# layer; layer names are user data and may hold anything else.
_SCOPE_NAME = re.compile(r"[A-Za-z0-9_.\\/>-]*")


def layer_output_tensor(layer):
    """The symbolic output of ``layer``'s first call (layers may be called more than once)."""
    if len(layer._inbound_nodes) == 1:
        return layer.output
    return layer._inbound_nodes[0].output_tensors[0]


def submodel_input_tensors(submodel) -> list:
    """The outer tensors a nested model is called on (its first call)."""
    return list(submodel._inbound_nodes[0].input_tensors)


@dataclass(frozen=True)
class Peaks:
    """Each filter's maximum response in each image of a batch, and where it sat."""

    values: np.ndarray  # float32 (B, F); a NaN response counts as -inf
    where: np.ndarray  # int32 (B, F): row * map width + column of the first position of the maximum
    map_hw: tuple[int, int]  # the response map's size


@dataclass
class _Stage:
    model: object  # keras.Model from this level's inputs to [wanted outputs..., child inputs...]
    layer_slots: list  # (output position, LayerInfo)
    peaks: bool = False  # reduce the wanted outputs to their Peaks inside the compiled pass
    children: list = field(default_factory=list)  # (first position, count, _Stage)
    call: object = None  # the model's forward pass, compiled where layer names allow

    def __post_init__(self):
        slots = [(position, info.data_format == "channels_first") for position, info in self.layer_slots]
        self.call = compiled_forward(self.model, (lambda outputs: _reduce_to_peaks(outputs, slots)) if self.peaks
                                     else None)


def reads_channels_first(models) -> bool:
    """True when any layer of ``models`` (nested ones too) computes channels first."""
    return any(getattr(layer, "data_format", None) == "channels_first" for layer in nested_layers(models))


def graph_safe(models) -> bool:
    """True when every layer ``models`` call has a name TensorFlow accepts as a scope."""
    return all(_SCOPE_NAME.fullmatch(layer.name) for layer in nested_layers(models))


def compiled_forward(model, finish=None):
    """``model(x, training=False)`` (then ``finish`` of its outputs), compiled by the backend
    (``framework.compile_function``): on TensorFlow when every layer name is a valid TF scope,
    with XLA for channels-first models (TF's CPU kernels refuse channels-first convolutions,
    "Conv2D only supports NHWC on the CPU", eagerly and in plain graph mode alike)."""

    def forward(x):
        outputs = model(x, training=False)
        return finish(outputs) if finish else outputs

    return compile_function(without_gradients(forward), graph_safe([model]), reads_channels_first([model]) or None)


def _reduce_to_peaks(outputs, slots: list[tuple[int, bool]]) -> list:
    """``outputs`` with each wanted map (position, channels first?) replaced by (maxima, where, map
    size): inside the compiled pass, where it is multithreaded and the maps never reach numpy.

    One read of each map: the arg-max, then its values gathered (3x faster than a max and an
    arg-max over a NaN-cleaned copy). Arg-max passes over NaN on TensorFlow's CPU kernels but
    stops at it elsewhere (XLA, which runs channels-first models, JAX, PyTorch), so there the
    NaNs go first, fused into the same loop.
    """
    from keras import ops

    skip_nan = backend_name() != "tensorflow"
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    for position, channels_first in slots:
        maps = ops.cast(outputs[position], "float32")
        if channels_first:
            maps = ops.transpose(maps, (0, 2, 3, 1))
        _, height, width, channels = ops.shape(maps)  # ints, or tensors where a model takes any size
        flat = ops.reshape(maps, (-1, height * width, channels))
        if channels_first or skip_nan:
            flat = ops.where(ops.isnan(flat), -np.inf, flat)
        where = ops.cast(ops.argmax(flat, axis=1), "int32")  # (B, F)
        values = ops.squeeze(ops.take_along_axis(flat, ops.expand_dims(where, 1), axis=1), 1)
        values = ops.where(ops.isnan(values), -np.inf, values)  # an all-NaN map
        outputs[position] = (values, where, ops.convert_to_tensor([height, width], "int32"))
    return outputs


def _build_stage(holder, targets: list[LayerInfo], depth: int, peaks: bool = False) -> _Stage:
    import keras

    outputs, layer_slots, child_specs = [], [], []
    for info in targets:
        if len(info.path) == depth:
            layer_slots.append((len(outputs), info))
            # the unit's response: the conv's output after the pointwise layers that follow it
            outputs.append(layer_output_tensor(unit_operation(holder, info.unit_layers[-1] if info.unit_layers
                                                              else info.name)))
    child_names = sorted({info.path[depth] for info in targets if len(info.path) > depth})
    for child_name in child_names:
        child = holder.get_layer(child_name)
        inputs = submodel_input_tensors(child)
        child_specs.append((len(outputs), len(inputs), child))
        outputs.extend(inputs)
    stage = _Stage(keras.Model(holder.inputs, outputs), layer_slots, peaks)
    for start, count, child in child_specs:
        inner = [t for t in targets if len(t.path) > depth and t.path[depth] == child.name]
        stage.children.append((start, count, _build_stage(child, inner, depth + 1, peaks)))
    return stage


def _channels_last(array: np.ndarray, info: LayerInfo) -> np.ndarray:
    if info.data_format == "channels_first":
        return np.moveaxis(array, 1, -1)
    return array


def _run(stage: _Stage, inputs: list, results: dict) -> None:
    from keras import ops

    outputs = stage.call(inputs)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    for position, info in stage.layer_slots:
        if stage.peaks:
            values, where, map_hw = (ops.convert_to_numpy(value) for value in outputs[position])
            results[info.index] = Peaks(np.asarray(values, np.float32), np.asarray(where, np.int32),
                                        (int(map_hw[0]), int(map_hw[1])))
        else:
            results[info.index] = _channels_last(np.asarray(ops.convert_to_numpy(outputs[position]), np.float32), info)
    for start, count, child in stage.children:
        _run(child, list(outputs[start : start + count]), results)


class FeatureProbe:
    """Maps a batch of model inputs to {layer index: (N, H, W, C) float32 feature maps}.

    A layer's map is its unit's response: the output of the last of ``info.unit_layers``
    (the conv's own output when there are none, as with ``--unit raw``)."""

    peaks = False

    def __init__(self, model, layers: list[LayerInfo]):
        self._stage = _build_stage(model, list(layers), 0, self.peaks)

    def __call__(self, batch: np.ndarray) -> dict[int, np.ndarray]:
        results: dict[int, np.ndarray] = {}
        _run(self._stage, [batch], results)
        return results


class PeakProbe(FeatureProbe):
    """Maps a batch of model inputs to {layer index: Peaks}, each filter's maximum and where.

    The same pass as ``FeatureProbe``, reduced inside it: VGG16's 13 maps of a batch of 32 images
    are 1.9 GB of floats, which numpy then reduced single-threaded at 40 % of the pass's time;
    their peaks are 0.3 MB."""

    peaks = True


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
    linear_copy = linear_copy_of(layer) if pre_activation else None
    if linear_copy is None:
        chain.append(keras.Model(_single_input(holder), layer_output_tensor(layer)))
    else:
        node = layer._inbound_nodes[0]
        chain.append(keras.Model(_single_input(holder), node.input_tensors[0]))
        chain.append(linear_copy)
    return chain


def ascent_chain(model, info: LayerInfo) -> tuple[list, object]:
    """(chain to the pre-activation value, the layer's activation) or (chain to output, None)."""
    import keras

    chain = layer_chain(model, info, pre_activation=True)
    if not isinstance(chain[-1], keras.Model):  # the last link is the layer's linear copy
        return chain, resolve_layer(model, info).activation
    return chain, None


def _single_input(holder):
    """The one input tensor of a (sub-)model, so chain links take a bare tensor."""
    if len(holder.inputs) != 1:
        raise ValueError(f"{holder.name} has {len(holder.inputs)} inputs; gradients need exactly one")
    return holder.inputs[0]


def linear_copy_of(layer, dtype=None):
    """The same layer with activation 'linear' and the same weights (computing in ``dtype``, a
    dtype policy's name, if given); None if it has none to drop."""
    import keras

    activation = getattr(layer, "activation", None)
    if activation is None or activation is keras.activations.linear:
        return None
    try:
        config = dict(layer.get_config(), activation="linear", name=f"{layer.name}_pre_activation")
        if dtype is not None:
            config["dtype"] = dtype
        copy = type(layer).from_config(config)
        copy.build(layer._inbound_nodes[0].input_tensors[0].shape)
        copy.set_weights(layer.get_weights())
    except Exception:  # a custom layer that cannot be rebuilt from its config
        return None
    return copy


def _call_frozen(operation, args, kwargs, twins: dict | None = None):
    """``operation``'s inference stand-in called on the arguments, or ``operation`` itself;
    ``twins``: its bfloat16 twin instead, made once and kept there by the operation's id."""
    if twins is not None:
        if id(operation) not in twins:
            twins[id(operation)] = bfloat16_twin(operation)
        stand_in = twins[id(operation)]
    else:
        stand_in = inference_stand_in(operation)
    if stand_in is not None:
        try:
            return stand_in(*args, **kwargs)
        except Exception:  # an unusual call (a mask, extra arguments): the layer itself
            pass
    return operation(*args, **kwargs)


def replay_graph(holder, inputs: list, calls: dict, watched: set, frozen: bool = False,
                 deltas: dict | None = None, twins: dict | None = None, until_watched: bool = False) -> list:
    """Call ``holder``'s layers again on ``inputs``, as Functional.call does, recording the first
    call of each layer whose id is in ``watched`` as ``calls[id] = (first input, output)``.
    ``frozen``: call each layer's ``inference_stand_in`` where it has one (the replay then only
    serves inference). ``deltas``: for each watched layer whose id is a key, a new model input
    (stored there) added to that first call's output, the output the rest of the graph sees.
    ``twins`` (with ``frozen``): every layer, watched ones included, replaced by its bfloat16 twin
    (``stand_ins.bfloat16_twin``), kept in ``twins`` by the layer's id. ``until_watched``: stop
    once every watched layer is called (only ``calls`` is wanted; VGG16's classifier alone holds
    three quarters of its weights, which a twin would copy).

    Nested models are replayed node by node too: called whole, a Functional model checks its
    inputs against the shapes it was built with. A layer that fails on the new input (a Dense
    after a Flatten) is skipped, and so is everything that needs it.
    """
    import keras
    from keras import tree

    graph = functional_graph(holder)
    values = {id(t): v for t, v in zip(graph.inputs, inputs)}
    for node in graph_nodes(holder):
        if until_watched and watched.issubset(calls):
            break
        operation = node.operation
        if operation is None or any(id(x) not in values for x in node.input_tensors):
            continue
        args, kwargs = node.arguments.fill_in(values)
        try:
            if isinstance(operation, keras.Model):
                outputs = replay_graph(operation, [values[id(x)] for x in node.input_tensors], calls, watched,
                                       frozen, deltas, twins, until_watched)
            elif frozen and (twins is not None or id(operation) not in watched):
                outputs = _call_frozen(operation, args, kwargs, twins)
            else:
                outputs = operation(*args, **kwargs)
        except Exception:  # not on the way to a watched layer (or the replay fails below)
            continue
        outputs = tree.flatten(outputs)
        if id(operation) in watched and id(operation) not in calls:
            if deltas is not None and id(operation) in deltas:
                deltas[id(operation)] = keras.Input(tuple(outputs[0].shape[1:]), name=f"{operation.name}_delta")
                outputs[0] = keras.layers.Add(name=f"{operation.name}_plus_delta")([outputs[0], deltas[id(operation)]])
            calls[id(operation)] = (tree.flatten(args)[0], outputs[0])
        for reference, value in zip(node.outputs, outputs):
            values[id(reference)] = value
    return [values.get(id(t)) for t in graph.outputs]


def free_size_values(model, layers: list[LayerInfo], channels_first: bool = False,
                     precision: str = "float32") -> tuple[object, dict]:
    """(an input of any height and width, {layer index: (value, activation)}) from one replay of
    the model, for every layer of ``layers`` the replay reaches; ``precision`` "bfloat16": a
    replay whose layers compute in bfloat16 (their twins).

    The value is the pre-activation (a linear copy of the layer) when the layer has its own
    activation, which is then returned separately; otherwise the layer's output and None.
    """
    import keras

    targets = {id(layer): (info, layer) for info in layers for layer in [resolve_layer(model, info)]}
    channels = model.inputs[0].shape[1 if channels_first else -1]
    new_input = keras.Input((channels, None, None) if channels_first else (None, None, channels))
    calls: dict = {}
    twins = {} if precision == "bfloat16" else None
    try:
        replay_graph(model, [new_input], calls, set(targets), frozen=True, twins=twins, until_watched=True)
    except Exception:
        return new_input, {}
    values = {}
    for layer_id, (layer_input, output) in calls.items():
        info, layer = targets[layer_id]
        linear_copy = linear_copy_of(layer, BFLOAT16_POLICY if twins is not None else None)
        values[info.index] = (linear_copy(layer_input), layer.activation) if linear_copy is not None else (output, None)
    return new_input, values
