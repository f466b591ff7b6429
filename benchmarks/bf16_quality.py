"""Does a climb in bfloat16 keep the pictures' response? The bundled (trained) demo model's conv3
and conv4, every filter climbed with the default balanced recipe once in float32 and once on a
bfloat16 copy of the model (Keras's mixed_bfloat16: weights float32, arithmetic bfloat16), both
sets of pictures judged by the float32 model: the response to the picture and under the frozen
quality measure's transforms.

    python benchmarks/bf16_quality.py

Measured 2026-12-04 (medians over the layer's filters, float32 -> bfloat16 climb): conv3
response 8.77 -> 9.13, under transforms 7.62 -> 8.04; conv4 134.9 -> 132.1, 118.0 -> 115.6.
A first look only: the demo is small (and its layers are too thin for ``--precision auto`` to
climb them in bfloat16); the trained ImageNet backbones are the real test:
``benchmarks/speed_candidates.py --candidates default bf16``.
"""

from __future__ import annotations

import time

import keras
import numpy as np

from cnnviz_report.analysis.ascent import AscentSettings, AscentTrunk
from cnnviz_report.analysis.keras_loading import _preprocess_for_mode
from cnnviz_report.analysis.keras_walk import inspect_model
from cnnviz_report.loading import demo_model_path

LAYERS = ("conv3", "conv4")


def bfloat16_copy(model):
    """The same model computing in bfloat16 (its weights kept in float32)."""
    def clone(layer):
        config = layer.get_config()
        if type(layer).__name__ != "InputLayer":
            config["dtype"] = "mixed_bfloat16"
        return type(layer).from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def main() -> None:
    model = keras.saving.load_model(demo_model_path())
    preprocess, settings = _preprocess_for_mode("raw"), AscentSettings(mode="balanced")
    climbed = {}
    for precision, climber in (("float32", model), ("bfloat16", bfloat16_copy(model))):
        layers = list(inspect_model(climber).conv_layers)
        trunk = AscentTrunk(climber, layers, (96, 96), 3, preprocess, settings)
        start = time.perf_counter()
        climbed[precision] = {info.name: trunk.engine(info).run(list(range(info.filters)))
                              for info in layers if info.name in LAYERS}
        print(f"{precision} climb: {time.perf_counter() - start:.1f} s")
    layers = list(inspect_model(model).conv_layers)
    judge = AscentTrunk(model, layers, (96, 96), 3, preprocess, settings)
    for info in layers:
        if info.name not in LAYERS:
            continue
        for precision, results in climbed.items():
            found = results[info.name]
            response, transformed = judge.engine(info).measure(found.images.astype(np.float32),
                                                               list(found.filter_indices))
            print(f"{info.name} {precision:<9} median response {np.median(response):8.3f}, "
                  f"under transforms {np.median(transformed):8.3f}")


if __name__ == "__main__":
    main()
