"""A streamed build: a whole first look before any ascent, a whole site at every update, the same
files at the end as a one-shot build (manifest timings aside), also after a stop and a rerun;
and a build killed mid-ascent leaves an honest site that the same command finishes."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from cnnviz_report import build, publishing
from cnnviz_report.build import build_site
from cnnviz_report.cli import main
from cnnviz_report.config import ReportConfig
from conftest import assert_valid_links

ROOT = Path(__file__).resolve().parent.parent
CLIMBED = ("002-conv1", "004-conv2", "006-conv3", "008-conv4")  # the demo's conv layers, in climbing order


def files(folder: Path) -> dict[str, str]:
    """Every file's digest; the manifest without its phase times (they differ run to run)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.name == "manifest.json":
                manifest = json.loads(data)
                manifest.pop("seconds_per_phase")
                data = json.dumps(manifest, sort_keys=True).encode()
            found[path.relative_to(folder).as_posix()] = hashlib.sha256(data).hexdigest()
    return found


@pytest.fixture(autouse=True)
def same_date(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1800000000")  # the pages' date, whatever the clock


def demo_config(out: Path, **changes) -> ReportConfig:
    return replace(ReportConfig(out=str(out), ascent_steps=3, max_filters=8, use_cache=False), **changes)


@pytest.fixture(scope="module")
def one_shot(tmp_path_factory):
    """The demo report built once, published at the end: what every streamed build must end as."""
    out = tmp_path_factory.mktemp("one-shot") / "site"
    os.environ["SOURCE_DATE_EPOCH"] = "1800000000"
    try:
        build_site(demo_config(out, stream=False))
    finally:
        del os.environ["SOURCE_DATE_EPOCH"]
    return files(out)


def test_the_first_look_and_every_update_are_whole_and_the_end_equals_a_one_shot_build(tmp_path, monkeypatch,
                                                                                     one_shot):
    out, looks = tmp_path / "site", []
    real_update = publishing.PublishedSite.update

    def update(site, report, pages):  # every published state: a copy, checked after the build
        real_update(site, report, pages)
        looks.append(shutil.copytree(out, tmp_path / f"update-{len(looks)}"))

    monkeypatch.setattr(publishing.PublishedSite, "update", update)
    first = tmp_path / "first-look"
    result = build_site(demo_config(out), first_look=lambda report: shutil.copytree(out, first))

    # the first look: everything but the ascents and the explanations, and says so everywhere
    assert assert_valid_links(first) > 20
    index = (first / "index.html").read_text()
    assert "This report is still being built" in index and "the gradient-ascent pictures of 4 of 4 layers" in index
    assert "each image&#39;s Grad-CAM and deciding units" in index
    for slug in CLIMBED:
        assert (first / "layers" / slug / "filters.png").is_file() and not (first / "layers" / slug / "mosaic.png").exists()
        page = " ".join((first / "layers" / f"{slug}.html").read_text().split())
        assert "The gradient-ascent pictures (the mosaic, each card's picture, which filters are ascent-dead) are " \
            "being drawn" in page
    assert "Grad-CAM and the deciding units: being drawn" in (first / "images" / "01-grace_hopper.html").read_text()
    assert "**Not finished:**" in (first / "summary.md").read_text()
    rows = list(csv.DictReader(io.StringIO((first / "health.csv").read_text())))
    assert rows and all(row["not_drawn"].startswith("ascent being drawn") and row["ascent_dead"] == "" for row in rows)
    assert json.loads((first / "manifest.json").read_text())["state"]["ascent_waiting"] == [
        "conv1", "conv2", "conv3", "conv4"]

    # each layer as it lands: its mosaic on its page, the others still waiting, every link whole
    assert len(looks) == len(CLIMBED)
    for landed, look in enumerate(looks, 1):
        assert assert_valid_links(look) > 20
        for position, slug in enumerate(CLIMBED, 1):
            page = (look / "layers" / f"{slug}.html").read_text()
            assert ('class="mosaic"' in page) == (position <= landed), (landed, slug)
        assert "This report is still being built" in (look / "index.html").read_text()
    # the end: the same files as the one-shot build, nothing left over
    assert files(out) == one_shot and result.cache_misses == 4
    assert not any(".cnnviz-" in path.name for path in tmp_path.rglob("*"))


def test_a_build_stopped_mid_ascent_says_so_and_the_same_command_finishes_it(tmp_path, monkeypatch, one_shot, capsys):
    out, cache = tmp_path / "site", tmp_path / "cache"
    real_entry = build.MosaicClimber.entry
    climbed = []

    def entry(climber, info, tell):  # Ctrl-C as the third layer starts to climb
        if len(climbed) == 2:
            raise KeyboardInterrupt
        climbed.append(info.name)
        return real_entry(climber, info, tell)

    args = ["build", "--out", str(out), "--ascent-steps", "3", "--max-filters", "8", "--cache-dir", str(cache),
            "--quiet"]
    with monkeypatch.context() as patched:
        patched.setattr(build.MosaicClimber, "entry", entry)
        assert main(args) == 130
    assert "interrupted; " in capsys.readouterr().err and assert_valid_links(out) > 20
    index = (out / "index.html").read_text()
    assert "This build stopped before it ended" in index and "the gradient-ascent pictures of 2 of 4 layers" in index
    assert (out / "layers" / "004-conv2" / "mosaic.png").is_file()
    assert "not drawn: the build stopped (interrupted)" in (out / "layers" / "006-conv3.html").read_text()
    assert "not drawn: the build stopped (interrupted)" in (out / "summary.md").read_text()

    result = build_site(demo_config(out, use_cache=True, cache_dir=str(cache)))
    assert (result.cache_hits, result.cache_misses) == (2, 2)  # only what was missing is drawn
    assert files(out) == one_shot


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds} s for {what}")
        time.sleep(0.05)


def test_a_killed_build_leaves_an_honest_site_and_the_rerun_draws_only_what_is_missing(tmp_path):
    out, cache = tmp_path / "site", tmp_path / "cache"
    command = [sys.executable, "-m", "cnnviz_report", "build", "--out", str(out), "--ascent-steps", "60",
               "--max-filters", "32", "--cache-dir", str(cache), "--no-explain"]
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(command, cwd=tmp_path, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        _wait_for(lambda: (out / "layers" / "002-conv1" / "mosaic.png").is_file(), 240, "the first layer to land")
    finally:
        process.kill()  # SIGKILL: no handler runs
        process.communicate(timeout=30)
    landed = [slug for slug in CLIMBED if (out / "layers" / slug / "mosaic.png").is_file()]
    assert 1 <= len(landed) < 4 and assert_valid_links(out) > 20
    index = " ".join((out / "index.html").read_text().split())
    assert "This report is still being built" in index and "If no build is running any more, the same command" in index
    rerun = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    reused, computed = map(int, re.search(r"mosaic cache: (\d+) reused, (\d+) computed", rerun.stdout).groups())
    # what had landed is reused (a layer killed between its cache entry and its pictures, too)
    assert reused >= len(landed) and reused + computed == 4
    assert "This report is still being built" not in (out / "index.html").read_text()
    assert not any(".cnnviz-" in path.name for path in tmp_path.rglob("*"))
