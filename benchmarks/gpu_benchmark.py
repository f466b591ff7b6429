"""For a person with a GPU: the full default report of VGG16 and ResNet50V2 (``--weights none``)
on each Keras backend installed, with wall time, gradient-ascent filters a second and peak device
memory, as one table. The target it is for: a full VGG16 report in 30 s or less on one
H100-class GPU.

    pip install "cnnviz_report[jax,torch]"     # and a CUDA build of each backend you want timed
    python benchmarks/gpu_benchmark.py
    python benchmarks/gpu_benchmark.py --models vgg16 --backends jax --quick   # a minute's check

Each (model, backend) builds in a process of its own (Keras fixes its backend per process),
without the mosaic cache, one-shot (``--no-stream``). On a machine without a GPU it runs on the
CPU and says so in the device column (peak memory is then the process's peak resident size).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

# Runs inside the child process: the build, then what the backend says of its device's peak.
CHILD = r"""
import json, resource, sys, time
from cnnviz_report.analysis.framework import backend_name, device_name, quiet_framework_start
quiet_framework_start()
from cnnviz_report.build import build_site
from cnnviz_report.config import ReportConfig

config = ReportConfig(**json.loads(sys.argv[1]))
start = time.perf_counter()
build_site(config)
wall = time.perf_counter() - start
backend, peak = backend_name(), None
try:
    if backend == "torch":
        import torch
        peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    elif backend == "jax":
        import jax
        peak = (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use")
    else:
        import tensorflow as tf
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] if tf.config.list_logical_devices("GPU") else None
except Exception:
    peak = None
device = device_name()
if peak is None:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print("RESULT " + json.dumps({"wall": wall, "device": device, "peak": peak}))
"""


def measure(model: str, backend: str, quick: bool, out: Path) -> dict:
    settings = {"model": model, "weights": "none", "out": str(out), "use_cache": False, "stream": False}
    if quick:
        settings.update(layers=("block4_conv3",) if model == "vgg16" else ("conv4_block6_2_conv",),
                        ascent_steps=2, max_filters=8)
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=str(HERE), TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", CHILD, json.dumps(settings)], capture_output=True, text=True,
                            env=env, cwd=tempfile.gettempdir())
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["failed"])[-1][:120]}
    found = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))[7:])
    with open(out / "health.csv", newline="") as handle:
        filters = sum(1 for row in csv.DictReader(handle) if row["ascent_activation"])
    ascent = json.loads((out / "manifest.json").read_text())["seconds_per_phase"].get("gradient ascent", 0.0)
    return dict(found, filters=filters, ascent=ascent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["vgg16", "resnet50v2"])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--quick", action="store_true", help="one layer, 8 filters, 2 steps: does it run at all")
    args = parser.parse_args()
    backends = [name for name in args.backends if importlib.util.find_spec(name) is not None]
    print(f"{'model':<11} {'backend':<11} {'device':<28} {'wall s':>8} {'ascent s':>9} {'filters/s':>10} "
          f"{'peak GiB':>9}")
    with tempfile.TemporaryDirectory() as scratch:
        for model in args.models:
            for backend in backends:
                row = measure(model, backend, args.quick, Path(scratch) / f"{model}-{backend}")
                if "error" in row:
                    print(f"{model:<11} {backend:<11} failed: {row['error']}")
                    continue
                rate = row["filters"] / row["ascent"] if row["ascent"] else float("nan")
                print(f"{model:<11} {backend:<11} {row['device'][:28]:<28} {row['wall']:8.1f} {row['ascent']:9.1f} "
                      f"{rate:10.2f} {row['peak'] / 2**30:9.2f}", flush=True)


if __name__ == "__main__":
    main()
