"""A PyTorch ``nn.Module`` behind the seam (``seam.ModelWalk`` and the probes of
``seam.ModelRun``), as ``keras_model.KerasModel`` puts a Keras model there (issue 33).

Runs are plain PyTorch on the module in eval mode, without gradients; inputs are what
``LoadedModel.model_input`` gives a channels-first model (N, C, H, W), outputs numpy with
channels last, as every probe returns them. A unit's response is read from a copy of the
module's fx graph that returns the last node of each asked unit (an activation written as a
function is a node, not a module, so a forward hook could not see it); a module fx cannot trace
is probed with forward hooks on its convs (their units are their raw outputs there).

The gradient ascent is the Keras engine's (``ascent``), run on Keras's PyTorch backend, where
``keras.ops`` compute on torch tensors: the module gives each layer's conv output, its unit
functions the response. The explanations are plain PyTorch autograd, on any backend.
"""

from __future__ import annotations

import hashlib
from typing import Callable

import numpy as np

from ..layers import LayerInfo, ModelInfo
from .activations import Peaks
from .attribution import LayerEvidence
from .ascent import AscentGroup, AscentSettings, LayerAscent, _Member, plan_canvases, upstream_cost
from .torch_walk import conv_kind, inspect_module, out_of_place, trace
from .units import _VERY_NEGATIVE, _saturated, rescue_split
from .weights import KernelView


class TorchModel:
    """``module`` (an ``nn.Module``) taking inputs of ``input_shape`` (C, H, W); ``code``: the
    digest of the file its ``forward`` comes from (part of every weights digest)."""

    def __init__(self, module, input_shape: tuple, code: str | None = None):
        self.module, self.input_shape, self.code = out_of_place(module.eval()), tuple(input_shape), code
        self.graph_module = trace(module)
        self._info: ModelInfo | None = None

    # ------------------------------------------------------------------ the walk

    def inspect(self) -> ModelInfo:
        if self._info is None:
            self._info = inspect_module(self.module, self.input_shape)
        return self._info

    def _module(self, info: LayerInfo):
        return self.module.get_submodule(info.name)

    def weights_digests(self, layers: tuple[LayerInfo, ...]) -> dict[int, str]:
        """layer index -> digest of the module's code file and of every module up to it: its
        class, its own parameters and buffers (BatchNorm's running statistics are weights too)."""
        running, digests = hashlib.sha256(f"code:{self.code}".encode()), {}
        for info in layers:
            running.update(f"{info.name}:{info.type_name}".encode())
            if info.params or info.type_name.startswith("BatchNorm"):
                module = self._module(info)
                for name, tensor in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
                    array = np.ascontiguousarray(tensor.detach().cpu().numpy())
                    running.update(f"{name}{array.dtype}{array.shape}".encode())
                    running.update(array.reshape(-1).view(np.uint8))
            digests[info.index] = running.hexdigest()
        return digests

    def kernel(self, info: LayerInfo) -> KernelView:
        """The conv's weight (out, in / groups, k..) in Keras's drawable layout (kh, kw, in, out)."""
        module = self._module(info)
        weight = module.weight.detach().cpu().numpy().astype(np.float32)
        kind, groups = conv_kind(module), module.groups
        if kind in ("conv1d", "transpose1d"):
            weight = weight[:, :, None]
        if kind.startswith("transpose"):  # PyTorch stores (in, out / groups, k..): (k.., in, out) as drawn
            kernel, note = np.moveaxis(weight, (0, 1), (-2, -1)), "transposed-conv kernel (in, out), as PyTorch stores it"
        else:  # (out, in / groups, k..) -> (k.., in / groups, out)
            kernel, note = np.moveaxis(weight, (0, 1), (-1, -2)), ""
        if kernel.ndim == 5:
            kd, kh, kw, cin, cout = kernel.shape
            return KernelView(kernel.transpose(1, 0, 2, 3, 4).reshape(kh, kd * kw, cin, cout),
                              f"3-D kernels: the {kd} depth slices are laid side by side")
        filters = kernel.shape[-1]
        if groups == 1 or kind.startswith("transpose"):
            return KernelView(np.ascontiguousarray(kernel), note)
        sets = np.arange(filters) // (filters // groups)
        if kind == "depthwise":
            multiplier = filters // groups
            return KernelView(np.ascontiguousarray(kernel), f"depthwise conv: filter f reads input channel "
                              f"f // {multiplier} alone; duplicates are judged only among the filters of one "
                              "input channel", input_sets=sets)
        return KernelView(np.ascontiguousarray(kernel), f"grouped conv: {groups} groups of {filters // groups} "
                          f"filters, each group reading its own {kernel.shape[-2]} of the {kernel.shape[-2] * groups} "
                          "input channels; duplicates are judged only within a group", input_sets=sets)

    def unit_functions(self, info: LayerInfo) -> list[Callable]:
        """The callables from the conv's output to its unit's response (its ``unit_layers``)."""
        if self.graph_module is None or not info.unit_layers:
            return []
        nodes = {node.name: node for node in self.graph_module.graph.nodes}
        modules = dict(self.graph_module.named_modules())
        functions = []
        for name in info.unit_layers:
            if name in modules:
                functions.append(modules[name])
                continue
            node = nodes[name]
            rest, keywords = node.args[1:], dict(node.kwargs)
            if node.op == "call_method":
                functions.append(lambda x, method=node.target, rest=rest, keywords=keywords:
                                 getattr(x, method)(*rest, **keywords))
            else:
                functions.append(lambda x, target=node.target, rest=rest, keywords=keywords:
                                 target(x, *rest, **keywords))
        return functions

    def unit_floor(self, info: LayerInfo) -> np.ndarray | None:
        """Per filter, the unit's value for a very negative conv output, if its chain saturates."""
        import torch

        functions = self.unit_functions(info)
        if not functions or not info.filters:
            return None
        results = []
        with torch.no_grad():
            for value in _VERY_NEGATIVE:
                x = torch.full((1, info.filters) + (1,) * (len(info.output_shape) - 2), value)
                for function in functions:
                    x = function(x)
                results.append(x.double().reshape(-1).numpy())
        return results[0] if _saturated(results) else None

    def input_shapes(self) -> list[tuple]:
        return [(None, *self.input_shape)]

    def output_shapes(self) -> list[tuple]:
        return [self.inspect().output_shape]

    def ends_in_sigmoid(self) -> bool:
        """The last operation of ``forward`` is a sigmoid (module or function) on one output."""
        if self.graph_module is None or self.inspect().output_shape[-1:] != (1,):
            return False
        output = next(node for node in self.graph_module.graph.nodes if node.op == "output")
        last = output.args[0]
        if not hasattr(last, "op"):
            return False
        if last.op == "call_module":
            return type(self.graph_module.get_submodule(last.target)).__name__ == "Sigmoid"
        return getattr(last.target, "__name__", last.target) == "sigmoid"

    # ------------------------------------------------------------------ the runs

    def _response_nodes(self, layers: list[LayerInfo], raw: bool = False, scores: bool = False):
        """A module from the input to each layer's unit response (its last unit node; ``raw``:
        the conv's own output), as a tuple, and the layers' indices in its order; ``scores``: the
        class scores before a final softmax or sigmoid last in the tuple."""
        import torch.fx

        wanted = {}
        for info in layers:
            # from the conv's (first) call along its unit: a module called again (one ReLU for a
            # whole block) has one name but several nodes, and the unit's is the one after the conv
            node = next(node for node in self.graph_module.graph.nodes
                        if node.op == "call_module" and node.target == info.name)
            for _ in () if raw else info.unit_layers:
                (node,) = node.users
            wanted[info.index] = node
        graph, copies = torch.fx.Graph(), {}
        for node in self.graph_module.graph.nodes:
            if node.op == "output":
                continue
            copies[node] = graph.node_copy(node, lambda argument: copies[argument])
        ends = [copies[node] for node in wanted.values()]
        if scores:
            ends.append(copies[self._scores_node()])
        graph.output(tuple(ends))
        probe = torch.fx.GraphModule(self.graph_module, graph)
        probe.graph.eliminate_dead_code()
        probe.recompile()
        return probe, list(wanted)

    def _forward_maps(self, layers: list[LayerInfo]) -> Callable:
        """A function of a batch (N, C, H, W): {layer index: its response as a torch tensor}."""
        import torch

        if self.graph_module is not None:
            probe, order = self._response_nodes(layers)

            def run(batch):
                with torch.no_grad():
                    return dict(zip(order, probe(torch.as_tensor(batch, dtype=torch.float32))))
            return run

        def hooked(batch):  # raw conv outputs, read by forward hooks
            found, handles = {}, []
            for info in layers:
                def hook(module, inputs, output, index=info.index):
                    found.setdefault(index, output)
                handles.append(self._module(info).register_forward_hook(hook))
            try:
                with torch.no_grad():
                    self.module(torch.as_tensor(batch, dtype=torch.float32))
            finally:
                for handle in handles:
                    handle.remove()
            return found
        return hooked

    def _scores_node(self):
        """The node of the class scores before the softmax or sigmoid ``forward`` may end in."""
        output = next(node for node in self.graph_module.graph.nodes if node.op == "output")
        last = output.args[0]
        if isinstance(last, (tuple, list)):
            last = last[0]
        squash = type(self.graph_module.get_submodule(last.target)).__name__ in ("Softmax", "Sigmoid") \
            if last.op == "call_module" else getattr(last.target, "__name__", last.target) in ("softmax", "sigmoid")
        return last.args[0] if squash else last

    def attribution_probe(self, layers: list[LayerInfo], decision: list[LayerInfo], binary: bool) -> Callable:
        """Per image, per layer, Grad-CAM and each unit's activation x gradient toward its class's
        score before the softmax (``attribution``'s recipe, by PyTorch's autograd: the gradient of
        the score with respect to each unit's response, an inner tensor of the graph)."""
        import torch

        if self.graph_module is None:
            raise ValueError(f"{self.inspect().name}: torch.fx cannot trace its forward, so no unit's gradient "
                             "can be read")
        probe, order = self._response_nodes(layers, scores=True)
        decision_indices = {info.index for info in decision}

        def evidence(batch: np.ndarray, classes: list[int]) -> list[dict[int, LayerEvidence]]:
            x = torch.as_tensor(batch, dtype=torch.float32).requires_grad_(True)
            with torch.enable_grad():
                *units, scores = probe(x)
                scores = scores.float().reshape(scores.shape[0], -1)
                if binary:
                    scores = torch.cat([-scores, scores], dim=1)
                chosen = scores.gather(1, torch.as_tensor(classes, dtype=torch.long)[:, None]).sum()
                gradients = torch.autograd.grad(chosen, units, allow_unused=True)
            per_image: list[dict[int, LayerEvidence]] = [{} for _ in classes]
            for index, value, gradient in zip(order, units, gradients):
                value = value.detach().float()
                gradient = torch.zeros_like(value) if gradient is None else gradient.float()
                cam = torch.relu(torch.einsum("bchw,bc->bhw", value, gradient.mean(dim=(2, 3)))).numpy()
                product = value * gradient
                contributions = product.sum(dim=(2, 3)).numpy()
                where = product.permute(0, 2, 3, 1).numpy() if index in decision_indices else None
                for i, found in enumerate(per_image):
                    found[index] = LayerEvidence(cam[i], contributions[i], where[i] if where is not None else None)
            return per_image
        return evidence

    def feature_probe(self, layers: list[LayerInfo]) -> Callable[[np.ndarray], dict[int, np.ndarray]]:
        forward = self._forward_maps(layers)
        return lambda batch: {index: np.ascontiguousarray(np.moveaxis(maps.float().numpy(), 1, -1))
                              for index, maps in forward(batch).items()}

    def peak_probe(self, layers: list[LayerInfo]) -> Callable[[np.ndarray], dict[int, Peaks]]:
        """Each filter's maximum and where, reduced in PyTorch (NaN counts as -inf)."""
        import torch

        forward = self._forward_maps(layers)

        def peaks(batch):
            results = {}
            for index, maps in forward(batch).items():
                batch_size, channels, height, width = maps.shape
                flat = torch.nan_to_num(maps.float().reshape(batch_size, channels, -1), nan=-np.inf)
                values, where = flat.max(dim=2)
                results[index] = Peaks(values.numpy(), where.int().numpy(), (int(height), int(width)))
            return results
        return peaks

    def class_scores(self) -> Callable[[np.ndarray], np.ndarray]:
        import torch

        def scores(batch):
            with torch.no_grad():
                return self.module(torch.as_tensor(batch, dtype=torch.float32)).float().numpy()
        return scores

    def ascent_trunk(self, conv_layers: list[LayerInfo], input_hw: tuple[int, int], channels: int, preprocess,
                     settings: AscentSettings, channels_first: bool, targets: list[LayerInfo],
                     work: dict[int, int]) -> "TorchAscentTrunk":
        return TorchAscentTrunk(self, conv_layers, input_hw, channels, preprocess, settings, targets)


class TorchAscentTrunk:
    """Every target layer's ascent engine for a PyTorch module: the same ``LayerAscent`` as a
    Keras model's, each layer a group of its own (PyTorch runs eagerly: there is no trace to
    share), on canvases of any size (a module's convolutions take any size; its receptive fields
    plan them)."""

    def __init__(self, model: TorchModel, conv_layers: list[LayerInfo], input_hw: tuple[int, int], channels: int,
                 preprocess, settings: AscentSettings, targets: list[LayerInfo]):
        from .framework import backend_name

        if backend_name() != "torch":
            raise ValueError(f"a PyTorch model climbs on Keras's torch backend, not {backend_name()} "
                             "(--backend torch, or KERAS_BACKEND=torch)")
        if model.graph_module is None:
            raise ValueError(f"{model.inspect().name}: torch.fx cannot trace its forward, so its layers cannot be "
                             "climbed one by one")
        self.model, self.input_hw, self.channels, self.settings = model, input_hw, channels, settings
        self._preprocess, self._conv_layers = preprocess, sorted(conv_layers, key=lambda layer: layer.index)
        self._canvases = plan_canvases(targets, input_hw, True, settings)
        self._engines: dict[int, LayerAscent] = {}

    def engine(self, info: LayerInfo) -> LayerAscent:
        if info.index not in self._engines:
            probe, _ = self.model._response_nodes([info], raw=True)
            functions = self.model.unit_functions(info)
            split = rescue_split(functions, info.filters or 0, True) if functions else None
            before = functions[:split] if split is not None else functions
            member = _Member(info, before, functions[split:] if split is not None else [],
                             self.model.unit_floor(info), True)
            group = AscentGroup([member], lambda x: list(probe(x)), [], True,
                                upstream_cost(self._conv_layers, info, self.input_hw), self._preprocess, True,
                                self.settings, self.channels)
            self._engines[info.index] = LayerAscent(group, info, self._canvases[info.index])
        return self._engines[info.index]

    def trace_ahead(self, plan) -> None:
        """Nothing to trace ahead: PyTorch runs eagerly."""

    def stop_tracing(self) -> None:
        """Nothing traces ahead (``trace_ahead``)."""
