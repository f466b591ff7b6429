"""Does a refactor of the presentation leave every site byte for byte as it was? Builds the demo
report, a diff of two checkpoints and a gallery of two models with fixed settings, then compares
two such builds file by file (manifest.json's timings aside).

    python benchmarks/compare_sites.py build /tmp/before     # at the old commit
    python benchmarks/compare_sites.py build /tmp/after      # at the new one
    python benchmarks/compare_sites.py compare /tmp/before /tmp/after

The model files are made once under ``--inputs`` and reused, so both builds read the same bytes;
the package built with is the one in this script's checkout (its path is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's package, not an installed one
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["SOURCE_DATE_EPOCH"] = "1767225600"  # 2026-01-01: the pages' date

FAST = ["--ascent-steps", "2", "--max-filters", "4", "--no-cache", "--quiet"]


def make_inputs(folder: Path) -> dict[str, str]:
    """The demo model, a copy with a few filters changed (one zeroed: it becomes dead), and the
    test suite's tiny model; made only when missing."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"a": folder / "demo-a.keras", "b": folder / "demo-b.keras", "tiny": folder / "tiny.keras"}
    if not all(path.is_file() for path in files.values()):
        import keras
        import numpy as np

        from cnnviz_report.loading import demo_model_path

        model = keras.saving.load_model(demo_model_path())
        model.save(files["a"])
        weights = model.get_weights()
        kernels = [i for i, w in enumerate(weights) if w.ndim == 4]
        weights[kernels[0]][..., 1] *= -2.0  # the first conv: a big change to filter 1
        weights[kernels[1]][..., 0] += 0.05  # the second: a small one to filter 0
        weights[kernels[-1]][..., 2] = 0.0  # the last: filter 2 zeroed
        model.set_weights(weights)
        model.save(files["b"])
        sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
        from conftest import make_tiny_model

        make_tiny_model(keras).save(files["tiny"])
    return {name: str(path) for name, path in files.items()}


def build(out: Path, inputs: Path) -> None:
    import cnnviz_report
    from cnnviz_report.cli import main
    from cnnviz_report.loading import demo_image_path

    print(f"building with {cnnviz_report.__file__}")
    models = make_inputs(inputs)
    photo = demo_image_path()
    out.mkdir(parents=True, exist_ok=True)
    for argv in (["build", "--out", str(out / "report"), *FAST],
                 ["diff", models["a"], models["b"], "--images", photo, "--out", str(out / "diff"), *FAST],
                 ["gallery", "demo", models["tiny"], "--images", photo, "--out", str(out / "gallery"), *FAST]):
        if main(argv) != 0:
            raise SystemExit(f"failed: {' '.join(argv)}")


def _files(root: Path) -> dict[str, Path]:
    return {str(path.relative_to(root)): path for path in sorted(root.rglob("*")) if path.is_file()}


def _without_timings(value):
    """manifest.json with the keys that hold times or sizes measured during the build dropped."""
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items()
                if not any(word in k for word in ("seconds", "time", "duration"))}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def compare(before: Path, after: Path) -> int:
    """Prints each file that differs or exists on one side only; returns how many."""
    old, new = _files(before), _files(after)
    problems = sorted(set(old) ^ set(new))
    for name in problems:
        print(f"only in {'before' if name in old else 'after'}: {name}")
    same = 0
    for name in sorted(set(old) & set(new)):
        a, b = old[name].read_bytes(), new[name].read_bytes()
        if a != b and name.endswith("manifest.json"):
            a, b = (json.dumps(_without_timings(json.loads(x)), sort_keys=True).encode() for x in (a, b))
        if a == b:
            same += 1
        else:
            print(f"differs: {name}")
            problems.append(name)
    print(f"{same} files identical, {len(problems)} differ or are missing")
    return len(problems)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build", help="build the three sites into OUT/report, OUT/diff, OUT/gallery")
    make.add_argument("out", type=Path)
    make.add_argument("--inputs", type=Path, default=Path("/tmp/compare-sites-inputs"),
                      help="where the model files are made once and reused")
    check = commands.add_parser("compare", help="compare two builds file by file")
    check.add_argument("before", type=Path)
    check.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "build":
        build(args.out, args.inputs)
    else:
        raise SystemExit(1 if compare(args.before, args.after) else 0)


if __name__ == "__main__":
    main()
