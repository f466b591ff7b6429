"""How soon a streamed build's first look is there, and (with --full) how long the whole report takes.

    python benchmarks/first_look.py                         # VGG16 and ResNet50V2, first look only
    python benchmarks/first_look.py --models vgg16 --full   # and the whole default report (VGG16: ~17 min)

Each build is the headline command as a user runs it (``build MODEL --weights none --images
PHOTO``, random weights, so it runs offline) in a subprocess with an empty cache. The first look
is the moment the console prints ``First look:``; then its site is checked: the index and every
layer page exist, every link resolves, and the index says what is still being drawn. Without
``--full`` the build is stopped there (SIGINT) and the site is checked again: whole, and saying
the build stopped.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from conftest import assert_valid_links  # noqa: E402

from cnnviz_report.loading import demo_image_path  # noqa: E402


def run(model: str, full: bool, folder: Path) -> dict:
    out, cache = folder / f"{model}-site", folder / f"{model}-cache"
    command = [sys.executable, "-m", "cnnviz_report", "build", model, "--weights", "none", "--images",
               demo_image_path(), "--out", str(out), "--cache-dir", str(cache)]
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env=dict(os.environ, PYTHONPATH=str(ROOT)))
    result = {"model": model}
    for line in process.stdout:
        if line.startswith("First look: "):
            result["first look s"] = round(time.monotonic() - started, 1)
            pages = sorted((out / "layers").glob("*.html"))
            index = (out / "index.html").read_text()
            result["layer pages"] = len(pages)
            result["links checked"] = assert_valid_links(out)
            result["says what is not drawn"] = "This report is still being built" in index
            if not full:
                process.send_signal(signal.SIGINT)
        if line.startswith("Built "):
            result["whole report s"] = round(time.monotonic() - started, 1)
    code = process.wait()
    result["exit code"] = code
    if not full:
        index = (out / "index.html").read_text()
        result["stopped site whole"] = assert_valid_links(out) > 0 and "This build stopped before it ended" in index
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["vgg16", "resnet50v2"])
    parser.add_argument("--full", action="store_true", help="let the builds finish: the whole report's time too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for model in args.models:
            print(run(model, args.full, Path(folder)), flush=True)


if __name__ == "__main__":
    main()
