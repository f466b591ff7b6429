"""Is the ETA honest? One build, with the progress events timed: each phase's share of the time
against its share of the plan, and the ETA the console would show against the time that was
really left (issue "4 of 7": progress that stays honest on many-layer models).

    python benchmarks/eta_benchmark.py efficientnetb0 --ascent-steps 1 --max-filters 8
    python benchmarks/eta_benchmark.py resnet50v2                # the default report (about 30 min)

``--weights none``, the Grace Hopper photo, no cache. A ratio of 1.00 is an exact ETA; below 1 it
promises too little time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, str(Path(__file__).parent))
from deep_models import photo_path  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--ascent-steps", type=int)
    parser.add_argument("--max-filters", type=int, default=64)
    args = parser.parse_args()

    from cnnviz_report.build import build_site
    from cnnviz_report.cli import _import_tensorflow_quietly
    from cnnviz_report.config import ReportConfig

    _import_tensorflow_quietly()
    photo = photo_path()
    events = []
    with tempfile.TemporaryDirectory() as out:
        config = ReportConfig(model=args.model, weights="none", images=(photo,), out=str(Path(out) / "site"),
                              use_cache=False, ascent_steps=args.ascent_steps, max_filters=args.max_filters)
        build_site(config, lambda progress: events.append((time.monotonic(), progress.phase, progress.work_done)))
        end = time.monotonic()
    seconds, planned = {}, {}
    for (at, phase, done), (following, _, done_next) in zip(events, events[1:] + [(end, None, 1.0)]):
        phase = phase.split(",")[0]  # "feature maps, images 1-1"
        seconds[phase] = seconds.get(phase, 0.0) + following - at
        planned[phase] = planned.get(phase, 0.0) + done_next - done
    total = end - events[0][0]
    print(f"{args.model}: {total:.1f} s\n\n| phase | time | share of the time | share of the plan |\n|---|---|---|---|")
    for phase in seconds:
        print(f"| {phase} | {seconds[phase]:.1f} s | {seconds[phase] / total:.0%} | {planned[phase]:.0%} |")
    print("\n| elapsed | ETA shown | really left | ratio |\n|---|---|---|---|")
    shown = [(at - events[0][0], done, end - at) for at, _, done in events if done >= 0.05]
    for elapsed, done, left in shown[:: max(1, len(shown) // 10)]:
        eta = elapsed * (1 - done) / done
        print(f"| {elapsed:.0f} s | {eta:.0f} s | {left:.0f} s | {eta / max(left, 1e-9):.2f} |")


if __name__ == "__main__":
    main()
