"""Walk a PyTorch ``nn.Module`` into the same plain records a Keras model gives (``layers``): its
modules in the order a forward pass calls them, their output shapes, conv kinds, kernels'
shapes, receptive fields and unit chains (issue 33, the walk; the runs come next).

The graph comes from ``torch.fx``: a symbolic trace of ``forward`` gives every module call and
every function call (``F.relu(x)``, ``x + y``) in order, so a unit follows its conv through
BatchNorm2d, ReLU or an activation written as a function, and a receptive field follows the
pooling and convolutions a value went through. A module that cannot be traced (data-dependent
control flow) is still walked through forward hooks: every leaf module and its output shape,
each conv's unit its raw output, its receptive field unknown.

Layers are named by module path (``layer4.2.conv3``); an activation written as a function is a
row of its own, named by its graph node (``relu_3``), so that it can end a unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..layers import IMAGE_CONV_KINDS, LayerInfo, ModelInfo

# class name -> kind, for the torch.nn conv classes (subclasses are found through the MRO)
CONV_KINDS = {
    "Conv1d": "conv1d", "Conv2d": "conv2d", "Conv3d": "conv3d",
    "ConvTranspose1d": "transpose1d", "ConvTranspose2d": "transpose", "ConvTranspose3d": "transpose3d",
}
# Modules that act on each value, or each channel, alone: they belong to a conv's unit.
POINTWISE_MODULES = {
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "ReLU", "ReLU6", "LeakyReLU", "PReLU",
    "ELU", "CELU", "SELU", "GELU", "SiLU", "Mish", "Hardswish", "Hardsigmoid", "Sigmoid", "Tanh", "Softplus",
    "Hardtanh", "Identity", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
}
# Functions and tensor methods that act on each value alone (their other arguments constants).
POINTWISE_FUNCTIONS = {
    "relu", "relu_", "relu6", "leaky_relu", "elu", "celu", "selu", "gelu", "silu", "mish", "hardswish",
    "hardsigmoid", "sigmoid", "tanh", "softplus", "hardtanh", "dropout",
}


# Pooling written as functions in forward: they move a receptive field as their modules do.
POOLING_FUNCTIONS = {"max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d"}


def conv_kind(module) -> str | None:
    """The conv kind of a torch.nn conv module (a depthwise Conv2d: one input channel a group)."""
    for cls in type(module).__mro__:
        kind = CONV_KINDS.get(cls.__name__)
        if kind and cls.__module__.startswith("torch.nn"):
            groups, channels = getattr(module, "groups", 1), getattr(module, "in_channels", 0)
            if kind == "conv2d" and groups > 1 and groups == channels:
                return "depthwise"
            return kind
    return None


@dataclass
class _Call:
    """One call in the forward pass: a module's, or a pointwise function's in ``forward``."""

    name: str  # module path, or the graph node's name for a function
    type_name: str
    module: object | None
    output_shape: tuple = ()
    field: tuple | None = None  # (receptive field, jump) per spatial axis, or None
    unit: tuple[str, ...] = ()


def trace(module):
    """``module``'s torch.fx graph module, or None when its forward cannot be traced symbolically."""
    import torch.fx

    try:
        graph_module = torch.fx.symbolic_trace(module)
    except Exception:  # data-dependent control flow, unsupported Python: the hooks' walk instead
        return None
    in_place = [node for node in graph_module.graph.nodes
                if node.op == "call_function" and node.kwargs.get("inplace") is True]
    for node in in_place:  # F.relu(x, inplace=True), as out_of_place does the modules
        node.kwargs = {**node.kwargs, "inplace": False}
    if in_place:
        graph_module.recompile()
    return graph_module


def out_of_place(module):
    """``module`` with its activations computing new tensors (``nn.ReLU(inplace=True)`` and the
    like, as torchvision and timm build them): the same values, and a gradient can flow through a
    conv output that a unit's activation would otherwise overwrite."""
    for child in module.modules():
        if getattr(child, "inplace", None) is True:
            child.inplace = False
    return module


def _function_name(node) -> str:
    target = node.target
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


def _is_pointwise(node, modules: dict) -> bool:
    """``node`` acts on its first argument value by value (or channel by channel)."""
    if node.op == "call_module":  # PReLU has one slope, or one a channel: never across channels
        return type(modules[node.target]).__name__ in POINTWISE_MODULES
    if node.op in ("call_function", "call_method"):
        import torch.fx

        arguments = list(node.args[1:]) + list(node.kwargs.values())
        return _function_name(node) in POINTWISE_FUNCTIONS and \
            not any(isinstance(argument, torch.fx.Node) for argument in arguments)
    return False


def _field_after(node, modules: dict, fields: dict) -> tuple | None:
    """(receptive field, jump) after ``node`` from its inputs' (None: not spatial, or unknown)."""
    import torch.fx

    inputs = [fields.get(argument) for argument in node.all_input_nodes]
    inputs = [state for state in inputs if state is not None]
    if not inputs:
        return None
    rank = len(inputs[0][0])
    if any(len(state[0]) != rank for state in inputs):
        return None
    rf = tuple(max(state[0][axis] for state in inputs) for axis in range(rank))
    jump = tuple(max(state[1][axis] for state in inputs) for axis in range(rank))
    if node.op == "call_module":
        module = modules[node.target]
        name = type(module).__name__
        if conv_kind(module) is not None or name.startswith(("MaxPool", "AvgPool")):
            def per_axis(value):
                return tuple(value) if isinstance(value, (tuple, list)) else (value,) * rank
            kernel, stride = per_axis(module.kernel_size), per_axis(module.stride or module.kernel_size)
            dilation = per_axis(getattr(module, "dilation", 1))
            if name.startswith("ConvTranspose"):
                return (tuple(r + (math.ceil(k / s) - 1) * j for r, k, s, j in zip(rf, kernel, stride, jump)),
                        tuple(j / s for j, s in zip(jump, stride)))
            return (tuple(r + d * (k - 1) * j for r, k, d, j in zip(rf, kernel, dilation, jump)),
                    tuple(j * s for j, s in zip(jump, stride)))
        if name in POINTWISE_MODULES or name.startswith(("ZeroPad", "ReflectionPad", "ReplicationPad",
                                                         "ConstantPad")):
            return rf, jump
        return None  # adaptive pooling, Flatten, Linear, anything that mixes positions
    if node.op in ("call_function", "call_method"):
        name = _function_name(node)
        if name in POOLING_FUNCTIONS:  # F.max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1)
            def argument(position, keyword, default=None):
                return node.args[position] if len(node.args) > position else node.kwargs.get(keyword, default)
            kernel = argument(1, "kernel_size")
            stride, dilation = argument(2, "stride") or kernel, argument(4, "dilation", 1)
            if not all(isinstance(value, (int, tuple, list)) for value in (kernel, stride, dilation)):
                return None
            def per_axis(value):
                return tuple(value) if isinstance(value, (tuple, list)) else (value,) * rank
            kernel, stride, dilation = per_axis(kernel), per_axis(stride), per_axis(dilation)
            return (tuple(r + d * (k - 1) * j for r, k, d, j in zip(rf, kernel, dilation, jump)),
                    tuple(j * s for j, s in zip(jump, stride)))
        if name in POINTWISE_FUNCTIONS or name in ("add", "mul", "sub", "truediv", "cat", "iadd", "pad",
                                                   "contiguous", "clone"):
            return rf, jump
        if name == "getitem" and isinstance(node.args[0], torch.fx.Node):
            return rf, jump
    return None


def _traced_calls(module, graph_module, input_shape: tuple) -> list[_Call]:
    """Every module call and pointwise function call of ``graph_module``'s graph, in order, with
    output shapes (shape propagation on zeros), receptive fields and each conv's unit."""
    import torch
    from torch.fx.passes.shape_prop import ShapeProp

    ShapeProp(graph_module).propagate(torch.zeros((1, *input_shape)))
    modules = dict(graph_module.named_modules())
    spatial = len(input_shape) - 1
    fields: dict = {}
    calls: list[_Call] = []
    by_node: dict = {}  # graph node -> its row (every call of a module -> the module's one row)
    first_nodes: dict = {}  # module path -> the node of its first call, where its row (and unit) is read
    for node in graph_module.graph.nodes:
        if node.op == "placeholder":
            fields[node] = ((1,) * spatial, (1,) * spatial)
            continue
        fields[node] = _field_after(node, modules, fields)
        meta = node.meta.get("tensor_meta")
        shape = (None, *tuple(meta.shape)[1:]) if meta is not None and hasattr(meta, "shape") else ()
        if node.op == "call_module" and node.target in first_nodes:
            # a module called again (ResNet's one ReLU after each BN): one row, its first call's
            by_node[node] = by_node[first_nodes[node.target]]
            continue
        if node.op == "call_module":
            call = _Call(node.target, type(modules[node.target]).__name__, modules[node.target], shape, fields[node])
            first_nodes[node.target] = node
        elif node.op in ("call_function", "call_method") and _is_pointwise(node, modules):
            call = _Call(node.name, f"{_function_name(node)} (function)", None, shape, fields[node])
        else:
            continue
        calls.append(call)
        by_node[node] = call
    for node in first_nodes.values():  # a conv's unit follows its first call, as the probes do
        call = by_node[node]
        if conv_kind(call.module) is not None:
            chain, current = [], node
            while len(current.users) == 1:
                (user,) = current.users
                if user.op == "output" or not _is_pointwise(user, modules) or user.args[0] is not current:
                    break
                chain.append(by_node[user].name)
                current = user
            call.unit = tuple(chain)
    return calls


def _hooked_calls(module, input_shape: tuple) -> list[_Call]:
    """Every leaf module in the order a forward pass first calls it, with its output shape."""
    import torch

    calls: dict[str, _Call] = {}
    handles = []
    for name, child in module.named_modules():
        if name and not list(child.children()):
            def hook(child, inputs, output, name=name):
                if name not in calls and isinstance(output, torch.Tensor):
                    calls[name] = _Call(name, type(child).__name__, child, (None, *tuple(output.shape)[1:]))
            handles.append(child.register_forward_hook(hook))
    try:
        with torch.no_grad():
            module(torch.zeros((1, *input_shape)))
    finally:
        for handle in handles:
            handle.remove()
    return list(calls.values())


def _kernel_shape(module) -> tuple | None:
    """The kernel in Keras's layout: (k.., in / groups, out) for convs (depthwise: (k.., in,
    multiplier)), (in, out) for Linear; None for modules without one."""
    weight = getattr(module, "weight", None)
    kind = conv_kind(module)
    if kind is None or weight is None:
        return tuple(weight.shape)[::-1] if type(module).__name__ == "Linear" and weight is not None else None
    shape = tuple(weight.shape)
    spatial = shape[2:]
    if kind == "depthwise":
        return (*spatial, module.in_channels, module.out_channels // module.in_channels)
    if kind.startswith("transpose"):
        return (*spatial, shape[1] * module.groups, shape[0])  # (k.., out, in), as Keras stores it
    return (*spatial, shape[1], shape[0])


def inspect_module(module, input_shape: tuple) -> ModelInfo:
    """``module``'s records at ``input_shape`` (channels first, no batch axis: (3, 224, 224))."""
    import torch

    module.eval()
    graph_module = trace(module)
    traced_ok = graph_module is not None
    calls = _traced_calls(module, graph_module, input_shape) if traced_ok else _hooked_calls(module, input_shape)
    rows = []
    for call in calls:
        kind = conv_kind(call.module) if call.module is not None else None
        reason = None
        if kind is not None and kind not in IMAGE_CONV_KINDS:
            reason = f"{call.type_name} feature maps are not 2-D images; only its kernels are drawn"
        params = sum(parameter.numel() for parameter in call.module.parameters(recurse=False)) \
            if call.module is not None else 0
        rows.append(LayerInfo(
            index=len(rows), name=call.name, path=(), depth=call.name.count(".") if call.module is not None else 0,
            type_name=call.type_name, output_shape=call.output_shape, params=int(params),
            kernel_shape=_kernel_shape(call.module) if call.module is not None else None,
            filters=call.output_shape[1] if kind and len(call.output_shape) > 1 else None,
            conv_kind=kind, data_format="channels_first",
            receptive_field=_as_number(call.field[0]) if call.field else None,
            effective_stride=_as_number(call.field[1]) if call.field else None,
            not_drawn_reason=reason, unit_layers=call.unit))
    with torch.no_grad():
        output = module(torch.zeros((1, *input_shape)))
    parameters = list(module.parameters())
    return ModelInfo(
        name=type(module).__name__,
        input_shape=(None, *input_shape),
        output_shape=(None, *tuple(output.shape)[1:]) if isinstance(output, torch.Tensor) else (),
        total_params=int(sum(parameter.numel() for parameter in parameters)),
        trainable_params=int(sum(parameter.numel() for parameter in parameters if parameter.requires_grad)),
        layers=tuple(rows),
    )


def _as_number(values: tuple | None) -> tuple | None:
    if values is None:
        return None
    return tuple(int(v) if float(v).is_integer() else round(float(v), 3) for v in values)
