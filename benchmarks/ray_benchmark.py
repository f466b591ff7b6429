"""Ray against the in-process build on this one machine, side by side in one run, and the plan's
units of work: what a cluster would be given.

    python benchmarks/ray_benchmark.py                 # the demo, one VGG16 layer of 512 filters (~25 min)
    python benchmarks/ray_benchmark.py --vgg-steps 2   # a quicker check

1. Ray's own cost: a local Ray head on the loopback address (as tests/test_ray.py starts it),
   then 400 empty tasks: tasks a second, and the time from submitting to a result.
2. The demo's default build, and VGG16's block5_conv3 with all 512 filters (``--weights none``,
   ``--ascent-steps`` from ``--vgg-steps``), each as a CLI build in a fresh process, no cache:
   in-process, then on the running cluster (a build is a Ray job of its own, so its workers
   start, import TensorFlow and trace within it).
3. The plan: how many units VGG16 with every filter, and a gallery of ResNet50V2 (the default 64
   filters and every filter), are split into, and the FLOPs of each unit (the engine's estimate).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only

ROOT = Path(__file__).resolve().parent.parent
ALL = 2 ** 31 - 1  # --max-filters all
PLANS = (("vgg16", ALL), ("resnet50v2", 64), ("resnet50v2", ALL), ("mobilenetv2", ALL), ("efficientnetb0", ALL),
         ("densenet121", ALL))  # VGG16 every filter, and a gallery of the many-layer models


def start_head(temp: str) -> tuple[str, subprocess.Popen]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    head = subprocess.Popen([str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--port",
                             str(port), "--num-cpus", str(os.cpu_count()), "--include-dashboard", "false",
                             "--disable-usage-stats", "--temp-dir", temp], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return f"127.0.0.1:{port}", head
        time.sleep(0.5)


def stop_head(head: subprocess.Popen) -> None:
    for sig, grace in ((signal.SIGTERM, 3), (signal.SIGKILL, 10)):
        try:
            os.killpg(head.pid, sig)
            head.wait(timeout=grace)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass


def empty_tasks(address: str, count: int = 400) -> dict:
    """Ray's own overhead: ``count`` empty tasks, submitted at once, and one at a time."""
    code = f"""
import json, time, ray
ray.init(address={address!r}, log_to_driver=False, configure_logging=False)
@ray.remote(num_cpus=1)
def nothing(i): return i
ray.get([nothing.remote(i) for i in range(20)])  # workers up
started = time.perf_counter(); ray.get([nothing.remote(i) for i in range({count})]); bulk = time.perf_counter() - started
started = time.perf_counter()
for i in range(50): ray.get(nothing.remote(i))
one = (time.perf_counter() - started) / 50
print(json.dumps({{"tasks_per_second": {count} / bulk, "round_trip_ms": one * 1000}}))
"""
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cli_build(args: list[str], out: Path) -> dict:
    """One CLI build in a fresh process: its wall time and its own phase times."""
    env = dict(os.environ, RAY_AUTH_MODE="disabled")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cnnviz_report", "build", *args, "--out", str(out), "--no-cache",
                    "--quiet"], check=True, env=env)
    manifest = json.loads((out / "manifest.json").read_text())
    return {"wall_seconds": time.perf_counter() - started, "phases": manifest["seconds_per_phase"]}


def compare(name: str, args: list[str], address: str, work: Path, rounds: int) -> dict:
    """In-process against Ray, alternating ``rounds`` times (this machine's speed drifts by tens
    of per cent between runs): the fastest of each."""
    locals_, remotes = [], []
    for _ in range(rounds):
        locals_.append(cli_build(args, work / f"{name}-local"))
        remotes.append(cli_build([*args, "--executor", "ray", "--ray-address", address], work / f"{name}-ray"))
    local = min(locals_, key=lambda run: run["wall_seconds"])
    remote = min(remotes, key=lambda run: run["wall_seconds"])
    row = {"name": name, "local": local, "ray": remote, "rounds": rounds,
           "local_walls": [run["wall_seconds"] for run in locals_], "ray_walls": [run["wall_seconds"] for run in remotes],
           "ray_overhead": remote["wall_seconds"] / local["wall_seconds"] - 1,
           "ray_ascent_overhead": remote["phases"]["gradient ascent"] / local["phases"]["gradient ascent"] - 1}
    same = sorted(p.relative_to(work / f"{name}-local") for p in (work / f"{name}-local").rglob("*.png"))
    row["identical_pictures"] = all((work / f"{name}-local" / p).read_bytes() == (work / f"{name}-ray" / p).read_bytes()
                                    for p in same)
    return row


def plan(model_name: str, max_filters: int) -> dict:
    """The units a build of ``model_name`` (``--weights none``) is split into: per layer the
    engine's batches; their count and the FLOPs of one unit (forward and gradient, every step)."""
    from cnnviz_report.analysis.ascent import MEASURE_STEPS
    from cnnviz_report.config import ReportConfig
    from cnnviz_report.analysis.keras_walk import inspect_model
    from cnnviz_report.analysis.keras_loading import load_model
    from cnnviz_report.phases.mosaics import ascent_settings, ascent_targets, ascent_trunk, mosaic_count

    config = ReportConfig(model=model_name, weights="none", max_filters=max_filters)
    loaded = load_model(config)
    model_info = inspect_model(loaded.model)
    trunk = ascent_trunk(loaded, model_info, config)
    steps = ascent_settings(config).step_count
    units, flops = 0, []
    for info in ascent_targets(model_info):
        count = mosaic_count(config, info)
        engine = trunk.engine(info)
        batches = engine.batches(list(range(count)))
        units += len(batches)
        flops += [len(b) * (steps + MEASURE_STEPS) * engine.flops_per_canvas_step for b in batches]
    flops.sort()
    return {"model": model_name, "max_filters": "all" if max_filters == ALL else max_filters,
            "layers": len(ascent_targets(model_info)), "filters": sum(mosaic_count(config, info)
                                                                      for info in ascent_targets(model_info)),
            "forward_gflop_per_image": sum(info.flops for info in model_info.conv_layers) / 1e9,
            "units": units, "total_tflop": sum(flops) / 1e12,
            "unit_gflop_median": flops[len(flops) // 2] / 1e9, "unit_gflop_max": flops[-1] / 1e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vgg-steps", type=int, default=4, help="ascent steps of the VGG16 layer (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each (default: %(default)s)")
    parser.add_argument("--skip-builds", action="store_true", help="only Ray's own cost and the plans")
    parser.add_argument("--skip-vgg", action="store_true", help="not the VGG16 layer")
    parser.add_argument("--skip-plans", action="store_true", help="not the plans")
    parser.add_argument("--child-plan", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_plan:
        print(json.dumps(plan(args.child_plan[0], int(args.child_plan[1]))))
        return
    photo = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / \
        "matplotlib" / "mpl-data" / "sample_data" / "grace_hopper.jpg"
    results = {}
    temp = tempfile.mkdtemp(prefix="cnnviz-rayb-", dir="/tmp")
    address, head = start_head(temp)
    try:
        results["empty_tasks"] = empty_tasks(address)
        print(json.dumps(results["empty_tasks"]), flush=True)
        with tempfile.TemporaryDirectory() as work:
            if not args.skip_builds:
                results["demo"] = compare("demo", [], address, Path(work), args.rounds)
                print(json.dumps(results["demo"]), flush=True)
            if not args.skip_builds and not args.skip_vgg:
                vgg = ["vgg16", "--weights", "none", "--layers", "block5_conv3", "--max-filters", "all",
                       "--ascent-steps", str(args.vgg_steps), "--images", str(photo)]
                results["vgg16_block5_conv3"] = compare("vgg16", vgg, address, Path(work), args.rounds)
                print(json.dumps(results["vgg16_block5_conv3"]), flush=True)
    finally:
        stop_head(head)
    results["plans"] = []
    for model_name, max_filters in () if args.skip_plans else PLANS:
        done = subprocess.run([sys.executable, __file__, "--child-plan", model_name, str(max_filters)],
                              capture_output=True, text=True, check=True)
        results["plans"].append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(results["plans"][-1]), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
