"""The same report on each Keras backend, side by side in one run: the build's wall time and its
gradient-ascent phase, per backend and per checkout (to hold a rewrite against the code before it).

    python benchmarks/backends.py                                  # VGG16 block4_conv3, 16 filters
    python benchmarks/backends.py --backends tensorflow --checkout /path/to/old/checkout
    python benchmarks/backends.py --model resnet50v2 --layers conv4_block6_2_conv

Each build runs in a process of its own (Keras fixes its backend per process), with
``--weights none --no-cache --no-stream``; the runs alternate (A B A B ...) so that a machine that
slows down or speeds up in the middle does not favour one of them. The numbers are the median of
``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def run_once(checkout: Path, backend: str, args, out: Path) -> tuple[float, float]:
    """(wall seconds, gradient-ascent seconds) of one build."""
    command = [sys.executable, "-m", "cnnviz_report", "build", args.model, "--weights", "none", "--out", str(out),
               "--layers", *args.layers, "--max-filters", str(args.filters), "--ascent-steps", str(args.steps),
               "--no-cache", "--no-stream", "--quiet"]
    if args.images:
        command += ["--images", *args.images]
    env = dict(os.environ, PYTHONPATH=str(checkout), KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    start = time.perf_counter()
    if subprocess.run(command, env=env, cwd=tempfile.gettempdir(), stderr=subprocess.DEVNULL).returncode != 0:
        return float("nan"), float("nan")  # e.g. a checkout from before the other backends
    wall = time.perf_counter() - start
    timings = json.loads((out / "manifest.json").read_text())["seconds_per_phase"]
    return wall, float(timings.get("gradient ascent", 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--layers", nargs="+", default=["block4_conv3"])
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--images", nargs="*", default=[])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--checkout", type=Path, action="append", default=[],
                        help="another checkout of cnnviz_report to time beside this one (repeatable)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    configs = [(checkout, backend) for checkout in [HERE, *args.checkout] for backend in args.backends]
    results: dict = {config: [] for config in configs}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for number, config in enumerate(configs):
                results[config].append(run_once(*config, args, Path(scratch) / f"{repeat}-{number}"))
    print(f"{args.model} {' '.join(args.layers)}: {args.filters} filters, {args.steps} steps, median of "
          f"{args.repeats} (this machine: {os.cpu_count()} cores)")
    print(f"{'checkout':<40} {'backend':<11} {'wall s':>8} {'ascent s':>9} {'ascent s/step':>14}")
    for (checkout, backend), runs in results.items():
        wall = statistics.median(run[0] for run in runs)
        ascent = statistics.median(run[1] for run in runs)
        print(f"{str(checkout)[-40:]:<40} {backend:<11} {wall:8.1f} {ascent:9.1f} {ascent / args.steps:14.2f}")


if __name__ == "__main__":
    main()
