"""Where bfloat16 steps pay: one layer's default climb in float32 and in bfloat16, side by side,
on keras.applications families (weights=None: the arithmetic is the same as trained), with the
layer's convolution density (FLOPs a conv output value up to it, ``LayerCost.flops_per_output``)
that ``ascent.climbing_precision`` decides by.

    python benchmarks/bf16_models.py                         # nine families, ~15 min
    python benchmarks/bf16_models.py --models VGG16 MobileNetV2

Each family runs in a subprocess of its own; two layers a family (at half and 90 % of its conv
layers), 16 filters each, 20 steps; each precision twice, alternating, the best time kept, after
an untimed one-step run that traces. Measured 2026-12-04 on this AMX CPU:

| family | layer | FLOPs an output | float32 s | bfloat16 s | speed-up |
|---|---|---|---|---|---|
| VGG16 | block3_conv3 / block5_conv1 | 1,550 / 2,161 | 5.9 / 12.0 | 2.2 / 3.9 | 2.7x / 3.1x |
| ResNet50V2 | conv4_block1_0_conv / conv5_block1_3_conv | 481 / 679 | 2.8 / 4.8 | 1.7 / 2.7 | 1.7x / 1.8x |
| ResNet50 | conv4_block1_0_conv / conv5_block1_3_conv | 476 / 665 | 3.1 / 5.1 | 1.9 / 3.1 | 1.6x / 1.7x |
| InceptionV3 | conv2d_40 / conv2d_76 | 972 / 1,214 | 2.1 / 3.0 | 1.4 / 1.9 | 1.6x / 1.6x |
| DenseNet121 | conv4_block11_1_conv / conv5_block10_2_conv | 723 / 814 | 5.8 / 5.9 | 3.8 / 3.8 | 1.5x / 1.6x |
| Xception | block7_sepconv3 / block13_sepconv1 | 551 / 739 | 4.0 / 6.5 | 2.3 / 3.7 | 1.7x / 1.8x |
| ConvNeXtTiny | stage_2_block_1_depthwise_conv / downsampling_conv_2 | 201 / 221 | 30.6 / 48.7 | 32.7 / 50.7 | 0.94x / 0.96x |
| EfficientNetB0 | block5a_expand_conv / block6d_se_reduce | 62 / 99 | 2.2 / 2.9 | 3.2 / 4.2 | 0.68x / 0.70x |
| MobileNetV2 | block_8_depthwise / block_15_expand | 51 / 77 | 1.3 / 1.7 | 1.7 / 2.2 | 0.78x / 0.78x |

Dense convolutions (476 FLOPs an output and up) run 1.5-3.1x faster; depthwise and narrow 1x1
convolutions (below about 220) are memory-bound and lose to bfloat16's casts. Hence
``BFLOAT16_MIN_DENSITY`` = 300.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = ["VGG16", "ResNet50V2", "ResNet50", "InceptionV3", "DenseNet121", "Xception", "ConvNeXtTiny",
            "EfficientNetB0", "MobileNetV2"]
FILTERS = 16

CHILD = r"""
import sys, time
import keras
from cnnviz_report.analysis.ascent import AscentSettings, AscentTrunk
from cnnviz_report.analysis.keras_loading import _preprocess_for_mode
from cnnviz_report.analysis.keras_walk import inspect_model

family, filters = sys.argv[1], int(sys.argv[2])
side = 299 if family == "InceptionV3" else 224
model = getattr(keras.applications, family)(weights=None, include_top=False, input_shape=(side, side, 3))
conv = [layer for layer in inspect_model(model).conv_layers if layer.takes_images]
picks = [conv[int(share * (len(conv) - 1))] for share in (0.5, 0.9)]
times = {}
for precision in ("float32", "bfloat16", "float32", "bfloat16"):
    trunk = AscentTrunk(model, conv, (side, side), 3, _preprocess_for_mode("tf"),
                        AscentSettings(mode="balanced", precision=precision), targets=picks)
    for info in picks:
        engine = trunk.engine(info)
        engine.prepare(engine.batch_size(filters))
        engine.run(list(range(filters)), steps=1)
        started = time.perf_counter()
        engine.run(list(range(filters)))
        times.setdefault((info.name, precision), []).append(time.perf_counter() - started)
for info in picks:
    engine = AscentTrunk(model, conv, (side, side), 3, _preprocess_for_mode("tf"), AscentSettings(mode="balanced"),
                         targets=[info]).engine(info)
    exact, fast = min(times[(info.name, "float32")]), min(times[(info.name, "bfloat16")])
    print(f"| {family} | {info.name} | {engine.cost.flops_per_output:,.0f} | {exact:.1f} | {fast:.1f} | "
          f"{exact / fast:.2f}x |", flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=FAMILIES, choices=FAMILIES)
    args = parser.parse_args()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow", PYTHONPATH=str(ROOT))
    print("| family | layer | FLOPs an output | float32 s | bfloat16 s | speed-up |")
    print("|---|---|---|---|---|---|")
    for family in args.models:
        subprocess.run([sys.executable, "-c", CHILD, family, str(FILTERS)], env=env, check=True)


if __name__ == "__main__":
    main()
