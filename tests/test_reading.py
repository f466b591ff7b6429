"""The report as a reviewer reads it (issue 12): colour bars with numbers, tiles that are links to
visible filters, every counted filter reachable, one health vocabulary, no path of the build
machine anywhere in the published files."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from cnnviz_report.analysis.ascent import MODE_RATES, MODE_STEPS
from cnnviz_report.cli import main

from test_browser import CHROMIUM, FLAGS, _require_browser


@pytest.fixture(scope="module")
def site(tmp_path_factory, photo_path):
    """The demo with 8 filters a layer (so some counted filters have no drawn card), built from
    files under a temporary folder, with notes and a single-file report."""
    root = tmp_path_factory.mktemp("reading")
    photo = root / "photos" / "portrait.jpg"
    photo.parent.mkdir()
    shutil.copyfile(photo_path, photo)
    (root / "notes.md").write_text("# Review\n\nLooks fine.\n", encoding="utf-8")
    out = root / "site"
    assert main(["build", "--images", str(photo), "--out", str(out), "--quiet", "--max-filters", "8",
                 "--notes", str(root / "notes.md"), "--single-file", str(root / "report.html"),
                 "--cache-dir", str(root / "cache")]) == 0
    return {"root": root, "out": out, "single": root / "report.html"}


def _text_files(folder: Path):
    for path in sorted(folder.rglob("*")):
        if path.suffix in (".html", ".md", ".csv", ".json", ".js", ".css"):
            yield path


def test_no_path_of_the_build_machine_in_any_output_file(site):
    leaks = {str(site["root"]), os.getcwd(), sys.prefix, os.path.expanduser("~"), str(Path(__file__).parent.parent)}
    leaks = {path for path in leaks if len(path) > 1}
    for path in [*_text_files(site["out"]), site["single"]]:
        text = path.read_text(encoding="utf-8")
        for leak in leaks:
            assert leak not in text, f"{path.name} holds the path {leak}"
    assert "portrait.jpg" in (site["out"] / "index.html").read_text(encoding="utf-8")  # its name, not its path


def test_every_filter_a_badge_counts_can_be_reached(site):
    checked = 0
    for page in sorted((site["out"] / "layers").glob("*.html")):
        html = page.read_text(encoding="utf-8")
        ids = set(re.findall(r'id="([^"]+)"', html))
        for anchor, numbers in re.findall(r'<p id="(health-[a-z_]+)" class="health-list">(.*?)</p>', html, re.S):
            for target in re.findall(r'href="#(f\d+)"', numbers):
                assert target in ids, f"{page.name}: {anchor} counts {target}, which has no card"
                checked += 1
        for badge in re.findall(r'<a class="badge" href="#(health-[a-z_]+)"', html):
            assert badge in ids
    assert checked > 0
    conv4 = (site["out"] / "layers" / "008-conv4.html").read_text(encoding="utf-8")
    assert re.search(r'id="f(?:[89]|\d\d)"', conv4), "a counted filter beyond --max-filters 8 gets a card of numbers"


def test_one_health_vocabulary(site):
    summary = (site["out"] / "summary.md").read_text(encoding="utf-8")
    for page in sorted((site["out"] / "layers").glob("*.html")):
        html = page.read_text(encoding="utf-8")
        assert not re.search(r"\bconst\b", html) and "ascent dead" not in html
        name = re.search(r"<h1>(\S+)", html).group(1)
        row = next(line for line in summary.splitlines() if f"[{name}]" in line).split("|")
        dead_badge = re.search(r'href="#health-dead"[^>]*>(\d+) dead<', html)
        assert (dead_badge.group(1) if dead_badge else "0") == row[8].strip(), name  # the Dead column
        ascent = re.search(r"<strong>(\d+) ascent-dead filter", html)
        badge = re.search(r'href="#health-ascent_dead"[^>]*>(\d+) ascent-dead<', html)
        assert (ascent.group(1) if ascent else None) == (badge.group(1) if badge else None), name


@pytest.fixture(scope="module")
def page(site):
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser.new_page(viewport={"width": 390, "height": 844})
        browser.close()


def test_every_coloured_picture_has_a_colour_bar_with_numbers(site, page):
    page.goto((site["out"] / "layers" / "008-conv4.html").as_uri())
    bars = page.locator(".colorbar")
    assert bars.count() >= 4  # kernels, feature grid, mean map, belt (and the cards' strips)
    for index in range(bars.count()):
        ticks = bars.nth(index).locator(".ticks span").all_inner_texts()
        assert len(ticks) >= 2 and all(re.fullmatch(r"-?[\d.]+(e[-+]\d+)?", tick) for tick in ticks), ticks
    kernel_ticks = page.locator("#filters + p + .tiled + .colorbar .ticks span, #filters ~ .colorbar .ticks span")
    texts = kernel_ticks.all_inner_texts()[:3]
    assert texts[1] == "0" and texts[0] == "-" + texts[2]  # kernels: signed, centred on zero


def test_tiles_are_links_that_land_on_their_filter(site, page):
    page.goto((site["out"] / "layers" / "008-conv4.html").as_uri())
    tile = page.locator("ol.mosaic a").nth(3)
    number = tile.locator(".n").inner_text()
    assert tile.is_visible() and re.fullmatch(r"\d+", number)
    tile.click()
    assert page.url.endswith(f"#f{number}")
    card = page.locator(f"#f{number}")
    assert card.is_visible() and card.bounding_box()["y"] < page.viewport_size["height"]
    grid_links = page.locator(".per-image .tilegrid a")
    assert grid_links.count() == 8 and grid_links.first.inner_text() == "0"  # numbers as text, one per card
    page.goto((site["out"] / "images" / "01-portrait.html").as_uri())
    link = page.locator(".tilegrid a").first
    assert link.get_attribute("href").endswith(".html#f0")  # from the image page to the layer's card


def test_settings_in_words_and_the_image_page_shows_what_the_model_saw_and_predicted(site):
    index = (site["out"] / "index.html").read_text(encoding="utf-8")
    settings = index[index.index('id="settings"'):]
    assert "None" not in settings and "[]" not in settings
    balanced = f"balanced mode, {MODE_STEPS['balanced']} steps, step size {MODE_RATES['balanced']:g}"
    assert balanced in settings and "portrait.jpg" in settings
    image_page = (site["out"] / "images" / "01-portrait.html").read_text(encoding="utf-8")
    assert "01-portrait-input.png" in image_page and "96×96 pixels" in image_page
    predictions = image_page[image_page.index('id="predictions"'):]
    rows = re.findall(r"<tr><td>([^<]+)</td><td class=\"num\">(\d+)</td><td class=\"num\">([\d.]+)%</td></tr>",
                      predictions)
    assert len(rows) == 5 and all(name in Path(__file__).parent.parent.joinpath(
        "cnnviz_report/demo/demo_classes.txt").read_text(encoding="utf-8") for name, _, _ in rows)
    shares = [float(share) for _, _, share in rows]
    assert shares == sorted(shares, reverse=True) and sum(shares) <= 100.05


def test_the_single_file_is_readable_like_the_rest_and_card_numbers_do_not_run_together(site):
    mask = os.umask(0)
    os.umask(mask)
    assert site["single"].stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600
    conv4 = (site["out"] / "layers" / "008-conv4.html").read_text(encoding="utf-8")
    # a card's per-image numbers sit in their own table cells, never glued to a rank ("#10.0641")
    assert re.search(r"<th>image</th><th>mean</th><th>max</th><th>active</th>", conv4)
    assert not re.search(r"#\d+\.\d", conv4)
