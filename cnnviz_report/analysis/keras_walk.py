"""Walk a Keras model, nested sub-models included, into plain LayerInfo records (``layers``):
each layer's shapes, kernel, receptive field, effective stride and unit chain.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np

from ..layers import IMAGE_CONV_KINDS, LayerInfo, ModelInfo
from .keras_graph import conv_kind, first_node, functional_graph, graph_nodes, is_model, resolve_layer
from .units import unit_chains


# --------------------------------------------------------------------------- helpers


def _shape(tensors) -> tuple:
    shapes = tuple(tuple(t.shape) for t in tensors)
    return shapes[0] if len(shapes) == 1 else shapes


def _count(weights) -> int:
    return int(sum(math.prod(w.shape) for w in weights))


def _kernel_shape(layer) -> tuple | None:
    if conv_kind(layer) in ("separable", "separable1d"):
        return tuple(layer.depthwise_kernel.shape)
    kernel = getattr(layer, "kernel", None)
    return tuple(kernel.shape) if kernel is not None and hasattr(kernel, "shape") else None


def _out_channels(layer, output_shape) -> int | None:
    fmt = getattr(layer, "data_format", "channels_last")
    if not output_shape or not isinstance(output_shape[0], (int, type(None))):
        return None
    return output_shape[1] if fmt == "channels_first" else output_shape[-1]


# --------------------------------------------------------------------------- receptive field


def _spatial(shape: tuple) -> tuple:
    return tuple(shape[1:-1])


def _rf_step(layer, states: list, node) -> tuple | None:
    """(receptive field, jump) after ``layer`` from its inputs' states; None when not spatial."""
    # An elementwise op that mixes in a global value (a squeeze-excite scale, a broadcast
    # constant) keeps the field of its spatial inputs.
    states = [s for s in states if s is not None]
    if not states:
        return None
    rank = len(states[0][0])
    if any(len(s[0]) != rank for s in states):
        return None
    rf = tuple(max(s[0][a] for s in states) for a in range(rank))
    jump = tuple(max(s[1][a] for s in states) for a in range(rank))
    name = type(layer).__name__
    kernel = getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None)
    strides = getattr(layer, "strides", None)
    in_shape = tuple(node.input_tensors[0].shape)
    out_shape = tuple(node.output_tensors[0].shape)
    if name.startswith("Global") or len(out_shape) != len(in_shape):
        return None
    if kernel is not None and strides is not None and len(kernel) == rank:
        dilation = getattr(layer, "dilation_rate", (1,) * rank) or (1,) * rank
        if "Transpose" in name:
            new_jump = tuple(j / s for j, s in zip(jump, strides))
            new_rf = tuple(r + (math.ceil(k / s) - 1) * j for r, k, s, j in zip(rf, kernel, strides, jump))
            return new_rf, new_jump
        new_rf = tuple(r + d * (k - 1) * j for r, k, d, j in zip(rf, kernel, dilation, jump))
        return new_rf, tuple(j * s for j, s in zip(jump, strides))
    if name.startswith("UpSampling"):
        size = layer.size if isinstance(layer.size, tuple) else (layer.size,) * rank
        return rf, tuple(j / s for j, s in zip(jump, size))
    # Pad: keras.ops.pad called in a functional graph (KerasHub pads with -inf before its stem's
    # pooling): like ZeroPadding, it moves the field's origin, not its size
    if name.startswith(("ZeroPadding", "Cropping")) or name == "Pad" or _spatial(in_shape) == _spatial(out_shape):
        return rf, jump
    return None


def _walk_rf(model, input_states: list, results: dict, known: dict) -> list:
    """Propagate (rf, jump) states through ``model``'s graph; nested models are walked in place."""
    graph = functional_graph(model)
    for tensor, state in zip(graph.inputs, input_states):
        known[id(tensor)] = state
    for node in graph_nodes(model):
        operation = node.operation
        states = [known.get(id(t)) for t in node.input_tensors]
        if is_model(operation):
            outputs = _walk_rf(operation, states, results, known)
            results.setdefault(id(operation), outputs[0] if outputs else None)
        else:
            state = _rf_step(operation, states, node)
            results.setdefault(id(operation), state)
            outputs = [state] * len(node.output_tensors)
        for tensor, state in zip(node.output_tensors, outputs):
            known[id(tensor)] = state
    return [known.get(id(t)) for t in graph.outputs]


def receptive_fields(model) -> dict:
    """id(layer) -> (receptive field, effective stride) per spatial axis, or None."""
    results: dict = {}
    starts = []
    for tensor in model.inputs:
        rank = len(tensor.shape) - 2
        starts.append(((1,) * rank, (1,) * rank) if rank >= 1 else None)
    _walk_rf(model, starts, results, {})
    return results


def _as_number(values: tuple | None) -> tuple | None:
    if values is None:
        return None
    return tuple(int(v) if float(v).is_integer() else round(float(v), 3) for v in values)


# --------------------------------------------------------------------------- the walk


def _layer_rows(model, path: tuple, depth: int, fields: dict, chains: dict, rows: list) -> None:
    graph_node_ids = {id(node) for node in graph_nodes(model)}
    for layer in model.layers:
        node = first_node(layer, graph_node_ids)
        outputs = node.output_tensors if node is not None else getattr(layer, "_outputs", None) or []
        if type(layer).__name__ == "InputLayer":
            outputs = layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]
        output_shape = _shape(outputs) if outputs else ()
        kind = conv_kind(layer)
        state = fields.get(id(layer))
        reason = None
        if kind is not None and kind not in IMAGE_CONV_KINDS:
            reason = f"{type(layer).__name__} feature maps are not 2-D images; only its kernels are drawn"
        elif kind is not None and node is None:
            reason = "layer is not connected to the model input"
        rows.append(
            LayerInfo(
                index=len(rows),
                name=layer.name,
                path=path,
                depth=depth,
                type_name=type(layer).__name__,
                output_shape=output_shape,
                params=layer.count_params() if layer.built else 0,
                kernel_shape=_kernel_shape(layer) if kind or hasattr(layer, "kernel") else None,
                pointwise_shape=(
                    tuple(layer.pointwise_kernel.shape) if kind in ("separable", "separable1d") else None
                ),
                filters=_out_channels(layer, output_shape) if kind else None,
                conv_kind=kind,
                data_format=getattr(layer, "data_format", None) or "channels_last",
                receptive_field=_as_number(state[0]) if state else None,
                effective_stride=_as_number(state[1]) if state else None,
                is_submodel=is_model(layer),
                not_drawn_reason=reason,
                unit_layers=chains.get(id(layer), ()),
            )
        )
        if is_model(layer):
            _layer_rows(layer, path + (layer.name,), depth + 1, fields, chains, rows)


def inspect_model(model) -> ModelInfo:
    """Every layer in model order, sub-models expanded right after their own row."""
    rows: list[LayerInfo] = []
    _layer_rows(model, (), 0, receptive_fields(model), unit_chains(model), rows)
    return ModelInfo(
        name=model.name,
        input_shape=_shape(model.inputs),
        output_shape=_shape(model.outputs),
        total_params=int(model.count_params()),
        trainable_params=_count(model.trainable_weights),
        layers=tuple(rows),
    )


def weights_digests(model, layers: tuple[LayerInfo, ...]) -> dict[int, str]:
    """layer index -> digest of the configuration and weights of every layer up to it: the part of
    the cache key that says which model the pictures are of."""
    running = hashlib.sha256()
    digests = {}
    for info in layers:
        if not info.is_submodel:  # a sub-model's weights are its inner layers', walked next
            layer = resolve_layer(model, info)
            running.update(json.dumps(layer.get_config(), sort_keys=True, default=str).encode())
            for weight in layer.get_weights():
                array = np.ascontiguousarray(weight)
                running.update(f"{array.dtype}{array.shape}".encode())
                running.update(array.reshape(-1).view(np.uint8))  # its bytes, without a copy (VGG16: 553 MB)
        digests[info.index] = running.hexdigest()
    return digests
