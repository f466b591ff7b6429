"""Issue 30's next speed candidate: one ascent step (forward and input gradient) of VGG16 up to
block4_conv3, 16 canvases of 96 px, in float32 and in bfloat16, side by side in one run.

    python benchmarks/bf16_step.py

CPUs with AMX (this machine's Sapphire-Rapids-class cores report AMX_BF16) run bfloat16
convolutions on their matrix units. Measured here 2026-12-04: float32 0.47 s a step, bfloat16
0.104 s (4.6x). The report's default climbs in bfloat16 where this pays (``--precision auto``;
docs/ascent.md, benchmarks/bf16_models.py), its responses and verdicts measured in float32.
"""

from __future__ import annotations

import os
import subprocess
import sys

STEPS = 10
CHILD = r"""
import sys, time
import numpy as np, keras, tensorflow as tf
keras.mixed_precision.set_global_policy(sys.argv[1])
base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(None, None, 3))
trunk = keras.Model(base.input, base.get_layer("block4_conv3").output)
x = tf.constant(np.random.default_rng(0).uniform(0, 255, (16, 96, 96, 3)).astype("float32"))

@tf.function
def step(x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(tf.cast(trunk(x, training=False), tf.float32))
    return tape.gradient(total, x)

step(x).numpy()
start = time.perf_counter()
for _ in range(int(sys.argv[2])):
    gradient = step(x)
gradient.numpy()
print((time.perf_counter() - start) / int(sys.argv[2]))
"""


def main() -> None:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    times: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    for _ in range(2):  # alternating, so a machine that changes speed favours neither
        for policy in times:
            found = subprocess.run([sys.executable, "-c", CHILD, policy, str(STEPS)], capture_output=True, text=True,
                                   env=env, check=True)
            times[policy].append(float(found.stdout.split()[-1]))
    best = {policy: min(values) for policy, values in times.items()}
    for policy, seconds in best.items():
        print(f"{policy:<9} {seconds:.3f} s a step")
    print(f"bfloat16 is {best['float32'] / best['bfloat16']:.1f}x float32 here")


if __name__ == "__main__":
    main()
