"""What the explanations (Grad-CAM at every layer, the deciding units, attribution.json) add to a
build, side by side in one run (issue "9").

    python benchmarks/attribution_benchmark.py            # VGG16, 4 images, no ascent: the strict case
    python benchmarks/attribution_benchmark.py --full     # the default report (30 ascent steps), ~1 h here
    python benchmarks/attribution_benchmark.py --rounds 2 # alternate the two builds, keep each one's fastest

Each build is a fresh CLI process (``--weights none``: offline), once with the explanations and once
with ``--no-explain``; the ratio of their wall times is what the explanations cost. Without the
gradient ascent, the rest of the build is at its shortest, so the share is the largest it can be.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def photos(folder: Path) -> list[str]:
    """Grace Hopper and three crops of her (different images, one file each)."""
    import matplotlib
    from PIL import Image

    source = Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB")
    width, height = source.size
    boxes = [(0, 0, width, height), (0, 0, width * 3 // 4, height * 3 // 4),
             (width // 4, height // 4, width, height), (width // 8, 0, width * 7 // 8, height * 3 // 4)]
    files = []
    for number, box in enumerate(boxes):
        path = folder / f"photo{number}.jpg"
        source.crop(box).save(path, quality=92)
        files.append(str(path))
    return files


def build(model: str, images: list[str], out: Path, extra: list[str]) -> dict:
    command = [sys.executable, "-m", "cnnviz_report", "build", model, "--weights", "none", "--images", *images,
               "--out", str(out), "--no-cache", "--quiet", *extra]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - started
    manifest = json.loads((out / "manifest.json").read_text())
    return {"seconds": seconds, "phases": manifest.get("seconds_per_phase", {})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--full", action="store_true", help="the default report, with its gradient ascent")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    ascent = [] if args.full else ["--ascent-steps", "0"]
    with tempfile.TemporaryDirectory() as folder:
        images = photos(Path(folder))
        best: dict[str, dict] = {}
        for round_number in range(args.rounds):
            for name, extra in (("with", []), ("without", ["--no-explain"])):
                result = build(args.model, images, Path(folder) / f"{name}-{round_number}", ascent + extra)
                print(json.dumps({"build": name, "round": round_number, **result}), flush=True)
                if name not in best or result["seconds"] < best[name]["seconds"]:
                    best[name] = result
    with_, without = best["with"]["seconds"], best["without"]["seconds"]
    phase = best["with"]["phases"].get("attribution")
    print(f"\n| {args.model}, 4 images{'' if args.full else ', --ascent-steps 0'} | with explanations | without "
          f"| added | attribution phase |\n|---|---|---|---|---|\n"
          f"| wall time (best of {args.rounds}) | {with_:.1f} s | {without:.1f} s | "
          f"{(with_ / without - 1) * 100:+.1f} % | {phase if phase is not None else '?'} s |")


if __name__ == "__main__":
    main()
