"""Why the model said it: Grad-CAM for every conv layer and each unit's share of a class score.

One replay of the model at its own input size gives every conv layer's unit response and the
class score *before* the softmax (keras.io's "Grad-CAM class activation visualization": the
last layer's activation dropped), so one gradient of that score serves every layer:

* Grad-CAM: the gradient averaged over positions weights the layer's channels; the weighted sum,
  through a ReLU, is where the evidence for the class sits (Selvaraju et al. 2017).
* a unit's contribution: its activation times the gradient, summed over positions (the
  first-order share of the score that passes through it; Distill's "Building Blocks of
  Interpretability" attributes to units this way), and where in the image that happened.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .keras_graph import resolve_holder, unit_operation
from ..layers import LayerInfo
from .activations import linear_copy_of, replay_graph, graph_safe, reads_channels_first
from .framework import compile_function, with_gradients

SOFTMAX_NAMES = ("softmax", "sigmoid")


@dataclass(frozen=True)
class LayerEvidence:
    """One conv layer's evidence for one image's class."""

    cam: np.ndarray  # float32 (h, w), >= 0: Grad-CAM at the layer's map size
    contributions: np.ndarray  # float32 (C,): activation x gradient summed over positions
    where: np.ndarray | None  # float32 (h, w, C): activation x gradient per position (decision layers only)


def _output_layer(model):
    """The layer (inside nested models too) whose output is ``model``'s single output."""
    import keras

    operation = model.outputs[0]._keras_history[0]
    while isinstance(operation, keras.Model):
        operation = operation.outputs[0]._keras_history[0]
    return operation


def _activation_name(function) -> str:
    return (getattr(function, "__name__", "") or type(function).__name__).lower()


def _is_squashing(function) -> bool:
    return _activation_name(function) in SOFTMAX_NAMES


def ends_in_sigmoid(model) -> bool:
    """The model's single output is a sigmoid (a layer with a sigmoid activation, or a final
    sigmoid Activation): a one-unit output like that is a binary classifier's probability."""
    import keras

    if len(model.outputs) != 1:
        return False
    layer = _output_layer(model)
    if isinstance(layer, keras.layers.Softmax):
        return False
    return _activation_name(getattr(layer, "activation", None)) == "sigmoid"


def class_scores_of(layer, layer_input, layer_output):
    """The class scores before the squashing (softmax or sigmoid), as keras.io takes them: the
    last layer without its activation, or the input of a final Softmax/Activation layer."""
    import keras

    if isinstance(layer, keras.layers.Softmax):
        return layer_input
    if isinstance(layer, keras.layers.Activation) and _is_squashing(layer.activation):
        return layer_input
    if _is_squashing(getattr(layer, "activation", None)):
        copy = linear_copy_of(layer)
        if copy is not None:
            return copy(layer_input)
    return layer_output


class AttributionProbe:
    """``probe(batch, classes)``: every conv layer's ``LayerEvidence`` for each image's class.

    ``binary``: the model's one output unit is a binary classifier's; class 1's score is its
    logit and class 0's the logit's negative (what a sigmoid gives class 0: sigmoid(-z) = 1 - p)."""

    def __init__(self, model, layers: list[LayerInfo], decision_layers: list[LayerInfo], binary: bool = False):
        import keras

        self.layers = list(layers)
        self._decision = {info.index for info in decision_layers}
        ends = {}
        for info in self.layers:
            holder = resolve_holder(model, info)
            ends[info.index] = unit_operation(holder, info.unit_layers[-1] if info.unit_layers else info.name)
        output_layer = _output_layer(model)
        watched = {id(layer) for layer in ends.values()} | {id(output_layer)}
        new_input = keras.Input(tuple(model.inputs[0].shape[1:]))
        # a zero "delta" added to each unit's response where the replay records it: the score's
        # gradient with respect to it is the gradient with respect to the response, on every
        # backend (a tape can watch an inner tensor; jax.grad and torch.autograd need an input)
        deltas = {id(layer): None for layer in ends.values()}
        calls: dict = {}
        replay_graph(model, [new_input], calls, watched, frozen=True, deltas=deltas)
        missing = [info.name for info in self.layers if id(ends[info.index]) not in calls]
        if missing or id(output_layer) not in calls:
            raise ValueError(f"the replay did not reach {', '.join(missing) or output_layer.name}")
        units = [calls[id(ends[info.index])][1] for info in self.layers]
        self._deltas = [deltas[id(ends[info.index])] for info in self.layers]
        scores = class_scores_of(output_layer, *calls[id(output_layer)])
        if binary:
            scores = keras.layers.Concatenate(axis=-1)([keras.ops.negative(scores), scores])
        self._model = keras.Model([new_input, *self._deltas], [*units, scores])
        self._channels_first = [info.data_format == "channels_first" for info in self.layers]
        self._delta_shapes: dict[tuple, list[tuple]] = {}
        self._run = compile_function(self._evidence, graph_safe([model]), reads_channels_first([model]) or None)

    def _zero_deltas(self, batch_shape: tuple) -> list[np.ndarray]:
        """Zeros the shape of each unit's response to a batch of ``batch_shape`` (found once per
        shape by Keras's shape inference: a model may take any size)."""
        if batch_shape not in self._delta_shapes:
            import keras

            # a delta broadcasts: 1 where its size is not known yet, so the spec gives the unit's own
            probes = [keras.KerasTensor((batch_shape[0], *(1 if d is None else d for d in delta.shape[1:])))
                      for delta in self._deltas]
            specs = self._model.compute_output_spec([keras.KerasTensor(batch_shape), *probes])
            self._delta_shapes[batch_shape] = [tuple(spec.shape) for spec in specs[:-1]]
        return [np.zeros(shape, np.float32) for shape in self._delta_shapes[batch_shape]]

    def _scores_and_units(self, deltas, batch, classes):
        """The summed class scores of each image's class (what is differentiated), and the units."""
        from keras import ops

        *units, scores = self._model([batch, *deltas], training=False)
        chosen = ops.take_along_axis(ops.cast(scores, "float32"), ops.expand_dims(classes, 1), axis=1)
        return ops.sum(chosen), units

    def _evidence(self, batch, classes, deltas):
        from keras import ops

        (_, units), gradients = with_gradients(lambda *found: self._scores_and_units(found[:-2], *found[-2:]),
                                               wrt=tuple(range(len(deltas))))(*deltas, batch, classes)
        found = []
        for value, gradient, channels_first in zip(units, gradients, self._channels_first):
            # float16/bfloat16 layers (mixed precision): the evidence is summed in float32
            value, gradient = ops.cast(value, "float32"), ops.cast(gradient, "float32")
            if channels_first:
                value, gradient = ops.transpose(value, (0, 2, 3, 1)), ops.transpose(gradient, (0, 2, 3, 1))
            weights = ops.mean(gradient, axis=(1, 2))  # (B, C)
            cam = ops.relu(ops.einsum("bhwc,bc->bhw", value, weights))
            product = value * gradient
            found.append((cam, ops.sum(product, axis=(1, 2)), product))
        return found

    def __call__(self, batch: np.ndarray, classes: list[int]) -> list[dict[int, LayerEvidence]]:
        """Per image of ``batch`` (the model's input), {layer index: its evidence for the image's
        class ``classes[i]``}."""
        from keras import ops

        found = self._run(ops.convert_to_tensor(batch), ops.convert_to_tensor(classes, "int32"),
                          [ops.convert_to_tensor(delta) for delta in self._zero_deltas(tuple(batch.shape))])
        per_image: list[dict[int, LayerEvidence]] = [{} for _ in classes]
        for info, (cam, contributions, product) in zip(self.layers, found):
            cam, contributions = ops.convert_to_numpy(cam), ops.convert_to_numpy(contributions)
            product = ops.convert_to_numpy(product) if info.index in self._decision else None
            for i, evidence in enumerate(per_image):
                evidence[info.index] = LayerEvidence(cam[i], contributions[i],
                                                     product[i] if product is not None else None)
        return per_image


def center_of_mass(heatmap: np.ndarray) -> tuple[float, float]:
    """(x, y) of a map's centre of mass as fractions (0..1) of its width and height; the centre
    of the map when it is zero everywhere."""
    values = np.nan_to_num(np.asarray(heatmap, np.float64), nan=0.0, posinf=0.0, neginf=0.0).clip(min=0)
    height, width = values.shape
    total = values.sum()
    if total <= 0:
        return 0.5, 0.5
    ys, xs = np.mgrid[0:height, 0:width]
    return (float(((xs + 0.5) * values).sum() / total / width), float(((ys + 0.5) * values).sum() / total / height))
