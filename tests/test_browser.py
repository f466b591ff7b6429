"""The demo site as a reader meets it: Debian's chromium driven by playwright, from file:// and
from `python -m http.server` under a sub-path (as on GitHub Pages). Skipped when playwright or
chromium is missing, unless CNNVIZ_REQUIRE_BROWSER=1 (as in .ci/run), where that is a failure.

Screenshots of the index, a layer page, phone-width indexes (the demo's and VGG16's), a card
reached by "go to filter", the card filter, the keys panel and the single-file report are saved
in $CNNVIZ_TEST_ARTIFACTS (default: the test's temporary folder) to be looked at.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from cnnviz_report.cli import main

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
NOTES = """# Review

Looks healthy. <script>alert("notes")</script> [bad link](javascript:alert(2))

## conv1

Edge and grating detectors. <img src=x onerror=alert(3)>
"""


def _require_browser():
    required = os.environ.get("CNNVIZ_REQUIRE_BROWSER") == "1"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if required:
            pytest.fail("playwright is not installed but CNNVIZ_REQUIRE_BROWSER=1")
        pytest.skip("playwright is not installed")
    if not os.path.exists(CHROMIUM):
        if required:
            pytest.fail(f"{CHROMIUM} is missing but CNNVIZ_REQUIRE_BROWSER=1")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("CNNVIZ_TEST_ARTIFACTS") or tmp_path_factory.mktemp("artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo site (with hostile notes) and its single-file report, built once for the module."""
    _require_browser()
    root = tmp_path_factory.mktemp("browser")
    (root / "notes.md").write_text(NOTES, encoding="utf-8")
    site, single = root / "served" / "repo", root / "report.html"
    site.parent.mkdir()
    # 10 ascent steps: the fewest that still judge ascent-dead filters, a third of the default's time
    assert main(["build", "--out", str(site), "--quiet", "--ascent-steps", "10", "--notes", str(root / "notes.md"),
                 "--single-file", str(single), "--cache-dir", str(root / "cache")]) == 0
    return {"site": site, "single": single}


@pytest.fixture(scope="module")
def browser():
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(demo):
    """http.server over the folder holding the site, so the site lives at /repo/ (a sub-path)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                "--directory", str(demo["site"].parent)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/repo/"
    process.terminate()
    process.wait(timeout=10)


class Watch:
    """Collects what a reader would notice: console errors (CSP violations print there), page
    errors, failed or 4xx/5xx requests, and any dialog (a script that should never run)."""

    def __init__(self, page):
        self.problems: list[str] = []
        page.on("console", lambda m: m.type in ("error", "warning") and self.problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        # a request the browser itself cancels on leaving the page is not a broken link
        page.on("requestfailed", lambda r: "ERR_ABORTED" not in (r.failure or "")
                and self.problems.append(f"failed: {r.url} {r.failure}"))
        page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url}"))
        page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))


def _wait_until(page, expression: str, timeout: float = 20.0) -> None:
    """Poll ``expression`` until it is true, through ``evaluate`` (not subject to the pages' CSP).
    ``page.wait_for_function`` passed when the images were already complete, but on a loaded
    machine, where it had to wait, it failed with a CSP EvalError (no 'unsafe-eval')."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout} s: {expression}"
        page.wait_for_timeout(50)


def _load_all_images(page) -> list[str]:
    """Scroll through the page so lazy pictures load; the sources of any that did not."""
    height = page.evaluate("document.body.scrollHeight")
    for y in range(0, height + 800, 800):
        page.evaluate(f"window.scrollTo(0, {y})")
        page.wait_for_timeout(20)
    page.wait_for_load_state("networkidle")
    # a lazy picture the scroll passed before the page grew under it has not started: show each one
    _wait_until(page, "Array.from(document.images).filter(i => !i.complete)"
                      ".map(i => (i.scrollIntoView(), i)).length === 0", timeout=60.0)
    return page.evaluate("Array.from(document.images).filter(i => !(i.naturalWidth > 0)).map(i => i.src)")


def _crawl(page, start: str, watch: Watch) -> dict[str, int]:
    """Visit every page reachable from ``start`` inside the site; check each link's target."""
    base = start.rsplit("/", 1)[0] + "/"
    queue, seen, checked = [start], set(), {"pages": 0, "links": 0, "images": 0}
    while queue:
        url = queue.pop()
        if url in seen:
            continue
        seen.add(url)
        page.goto(url)
        checked["pages"] += 1
        assert _load_all_images(page) == [], url
        checked["images"] += page.evaluate("document.images.length")
        for href in page.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"):
            target = href.split("#", 1)[0]
            assert target.startswith(base), f"{url}: link leaves the site: {href}"
            checked["links"] += 1
            if target.endswith(".html"):
                queue.append(target)
            elif target.startswith("file:"):
                assert Path(urllib.parse.unquote(urllib.parse.urlparse(target).path)).is_file(), f"{url}: dead {href}"
            else:
                assert page.request.get(target).ok, f"{url}: dead {href}"
    assert watch.problems == []
    return checked


@pytest.mark.parametrize("where", ["file", "http-subpath"])
def test_every_page_link_and_image_resolves_without_console_errors(browser, demo, request, where):
    start = (demo["site"] / "index.html").as_uri() if where == "file" else request.getfixturevalue("server")
    page = browser.new_page()
    watch = Watch(page)
    if where != "file":
        start = page.goto(start).url  # /repo/ serves index.html
        start = start if start.endswith(".html") else start + "index.html"
    checked = _crawl(page, start, watch)
    assert checked["pages"] == 1 + 4 + 1 and checked["images"] > 100 and checked["links"] > 100
    page.close()


def test_notes_are_shown_as_text_and_never_run(browser, demo):
    page = browser.new_page()
    watch = Watch(page)
    page.goto((demo["site"] / "index.html").as_uri())
    notes = page.inner_text("section.notes")
    assert '<script>alert("notes")</script>' in notes and page.locator("section.notes script").count() == 0
    assert page.get_attribute("section.notes a", "href") == "#unsafe-link-removed"
    page.goto((demo["site"] / "layers/002-conv1.html").as_uri())
    assert "<img src=x onerror=alert(3)>" in page.inner_text("section.notes")
    assert watch.problems == []
    page.close()


def test_search_narrows_the_tables_and_keys_move_between_layers(browser, demo, artifacts):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    watch = Watch(page)
    page.goto((demo["site"] / "index.html").as_uri())
    rows = "table.conv-table tbody tr"
    assert page.locator(rows).count() == 4 and page.is_visible("#layer-filter")
    page.screenshot(path=str(artifacts / "index.png"))
    page.keyboard.press("/")  # focuses the box
    page.keyboard.type("conv4")
    assert page.locator(f"{rows}:visible").count() == 1 and "conv4" in page.inner_text(f"{rows}:visible")
    assert page.inner_text("#layer-filter-count") == "1 of 4 conv layers, 1 of 11 layers"
    assert page.locator("table.all tbody tr:visible").count() == 1
    page.fill("#layer-filter", "")
    assert page.locator(f"{rows}:visible").count() == 4

    page.goto((demo["site"] / "layers/002-conv1.html").as_uri())
    page.screenshot(path=str(artifacts / "layer.png"))
    page.keyboard.press("ArrowRight")
    page.wait_for_url("**/004-conv2.html")
    page.keyboard.press("j")
    page.wait_for_url("**/006-conv3.html")
    page.keyboard.press("ArrowLeft")
    page.wait_for_url("**/004-conv2.html")
    assert watch.problems == []
    page.close()


def test_a_filter_anchor_shows_that_filter(browser, demo, artifacts):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto((demo["site"] / "layers/008-conv4.html").as_uri() + "#f17")
    card = page.locator("#f17")
    assert card.is_visible() and "Filter 17" in card.inner_text()
    box = card.bounding_box()
    assert 0 <= box["y"] < 900 and page.evaluate("window.scrollY") > 1000  # scrolled to it
    _load_all_images(page)
    page.evaluate("document.getElementById('f17').scrollIntoView()")
    page.screenshot(path=str(artifacts / "filter-card.png"))
    page.close()


PHONE = {"width": 390, "height": 844}


def test_an_image_page_leads_from_the_prediction_to_a_deciding_units_card_on_a_phone(browser, demo, artifacts):
    page = browser.new_page(viewport=PHONE)
    page.goto((demo["site"] / "images/01-grace_hopper.html").as_uri() + "#gradcam")
    assert page.locator("#gradcam").is_visible()
    gradcam = page.locator("#gradcam ~ .pair img").first
    assert gradcam.evaluate("img => img.complete && img.naturalWidth > 0")
    units = page.locator(".decision-unit")
    assert 1 <= units.count() <= 6
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    _load_all_images(page)
    page.locator("#units").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "image-units-phone.png"))
    link = units.first.locator("figcaption a")
    target = link.get_attribute("href")
    link.click()
    page.wait_for_load_state()
    anchor = target.split("#")[1]
    assert page.url.endswith(target.split("/")[-1]) and page.locator(f"#{anchor}").is_visible()
    page.close()


@pytest.fixture(scope="module")
def vgg(tmp_path_factory):
    """A real architecture's site (VGG16, random weights, offline): 3 layers in two stages (a pattern
    and a name), 8 filters, 1 ascent step, so it builds in about 20 s; the photo sits at a long
    absolute path, as a user's does, which the index's build settings show."""
    _require_browser()
    root = tmp_path_factory.mktemp("vgg")
    photo = root / "photographs-from-the-naval-history-archive" / "grace_hopper_in_uniform_1984.jpg"
    photo.parent.mkdir()
    from cnnviz_report.loading import demo_image_path
    photo.write_bytes(Path(demo_image_path()).read_bytes())
    site = root / "site"
    assert main(["build", "vgg16", "--weights", "none", "--layers", "block1_*", "block5_conv1",
                 "--max-filters", "8", "--ascent-steps", "1", "--images", str(photo), "--out", str(site),
                 "--quiet", "--cache-dir", str(root / "cache")]) == 0
    return site


def _site_pages(site: Path) -> list[str]:
    return ["index.html"] + sorted(f"{folder}/{p.name}" for folder in ("layers", "images")
                                   for p in (site / folder).glob("*.html"))


def _topbar_bottom(page) -> float:
    return page.evaluate("document.querySelector('.topbar').getBoundingClientRect().bottom")


@pytest.mark.parametrize("which", ["demo", "vgg"])
def test_no_page_is_wider_than_a_phone(browser, request, artifacts, which):
    site = request.getfixturevalue("demo")["site"] if which == "demo" else request.getfixturevalue("vgg")
    page = browser.new_page(viewport=PHONE, device_scale_factor=2)
    widths = {}
    for name in _site_pages(site):
        page.goto((site / name).as_uri())
        widths[name] = page.evaluate("document.documentElement.scrollWidth")
    assert all(width <= PHONE["width"] for width in widths.values()), widths
    page.goto((site / "index.html").as_uri())
    page.screenshot(path=str(artifacts / f"phone-index-{which}.png"))
    page.close()


def test_the_phone_index_keeps_name_and_health_in_view_and_says_tables_scroll(browser, demo):
    page = browser.new_page(viewport=PHONE)
    page.goto((demo["site"] / "index.html").as_uri())
    headers = page.locator("table.conv-table").first.locator("thead th")
    for name in ("Layer", "Health"):
        box = headers.nth(headers.all_inner_texts().index(name)).bounding_box()
        assert box["x"] + box["width"] <= PHONE["width"], name  # on screen without scrolling
    assert page.locator(".scroll-hint").first.is_visible()
    box = page.locator("#layer-filter").bounding_box()  # the search box and its hint fit
    assert box["x"] + box["width"] <= PHONE["width"] and "press /" in page.inner_text(".search label")
    page.close()


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900}, PHONE], ids=["desktop", "phone"])
def test_a_stage_link_lands_on_its_stage_and_layer_pages_link_their_stage(browser, vgg, artifacts, viewport):
    page = browser.new_page(viewport=viewport)
    watch = Watch(page)
    page.goto((vgg / "index.html").as_uri())
    assert page.locator("#stages a").all_inner_texts() == ["block1", "block5"]
    assert "found by the layer names (blockN_)" in page.inner_text("#stages")
    page.click('#stages a[href="#stage-block5"]')
    _wait_until(page, "location.hash === '#stage-block5'")
    top = page.locator("#stage-block5").bounding_box()["y"]
    assert _topbar_bottom(page) <= top < viewport["height"] / 2  # there, and not under the bar
    assert "block5_conv1" in page.inner_text("#stage-block5") and "1 of 3 conv layers drawn" in page.inner_text(
        "#stage-block5 h3")
    page.screenshot(path=str(artifacts / f"vgg-stage-{viewport['width']}.png"))
    page.goto((vgg / "layers/001-block1_conv1.html").as_uri())
    nav = page.locator("nav.stage-nav")
    assert "Stage block1 (224 px), layer 1 of 2 drawn in it" in nav.inner_text()
    nav.locator("a", has_text="block1_conv2").click()
    page.wait_for_url("**/002-block1_conv2.html")
    page.locator("nav.stage-nav a", has_text="block1").first.click()
    _wait_until(page, "location.hash === '#stage-block1'")
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    assert watch.problems == []
    page.close()


def test_the_layer_contents_link_every_section(browser, demo):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    watch = Watch(page)
    page.goto((demo["site"] / "layers/008-conv4.html").as_uri())
    anchors = page.evaluate("Array.from(document.querySelectorAll('#contents a')).map(a => a.hash.slice(1))")
    assert anchors == ["filters", "ascent", "image-1", "filter-cards"]
    for anchor in anchors:
        page.click(f'#contents a[href="#{anchor}"]')
        top = page.evaluate(f"document.getElementById('{anchor}').getBoundingClientRect().top")
        assert _topbar_bottom(page) <= top < 900, anchor  # there, and not under the bar
        page.click(".topbar a[href='#contents']")  # back to the contents from anywhere
        assert page.locator("#contents").is_visible()
    assert watch.problems == []
    page.close()


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900}, PHONE], ids=["desktop", "phone"])
def test_go_to_filter_lands_on_its_card_below_the_bar(browser, demo, artifacts, viewport):
    page = browser.new_page(viewport=viewport)
    watch = Watch(page)
    page.goto((demo["site"] / "layers/008-conv4.html").as_uri())
    page.keyboard.press("g")
    page.keyboard.type("17")
    page.keyboard.press("Enter")
    _wait_until(page, "location.hash === '#f17'")
    top = page.locator("#f17").bounding_box()["y"]
    assert _topbar_bottom(page) <= top < viewport["height"] / 2 and page.evaluate("scrollY") > 1000
    page.screenshot(path=str(artifacts / f"go-to-filter-{viewport['width']}.png"))
    page.goto((demo["site"] / "layers/008-conv4.html").as_uri() + "#f30")  # a link from elsewhere too
    assert _topbar_bottom(page) <= page.locator("#f30").bounding_box()["y"] < viewport["height"] / 2
    assert watch.problems == []
    page.close()


def test_the_health_filter_shows_only_flagged_cards(browser, demo, artifacts):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    watch = Watch(page)
    page.goto((demo["site"] / "layers/008-conv4.html").as_uri())
    cards = "article.card"
    total = page.locator(cards).count()
    page.click("#card-filter button[data-show='dead']")
    dead = page.locator(f"{cards}:visible")
    assert 0 < dead.count() < total and page.inner_text("#card-filter-count") == f"{dead.count()} of {total} cards shown"
    assert all("dead" in badges for badges in (dead.nth(i).locator("h3 .badge").all_inner_texts()
                                               for i in range(dead.count())))
    assert f"dead {dead.count()}" in page.inner_text("#card-filter button[data-show='dead']")
    page.screenshot(path=str(artifacts / "card-filter.png"))
    page.click("#card-filter button[data-show='*']")
    flagged = page.locator(f"{cards}:visible")
    assert dead.count() <= flagged.count() < total
    assert all(flagged.nth(i).locator("h3 .badge").count() for i in range(flagged.count()))
    page.click("#card-filter button[data-show='']")
    assert page.locator(f"{cards}:visible").count() == total
    assert watch.problems == []
    page.close()


def test_the_keys_panel_opens_lists_the_keys_and_closes(browser, demo, artifacts):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    watch = Watch(page)
    page.goto((demo["site"] / "layers/004-conv2.html").as_uri())
    panel = page.locator("#keys-help")
    page.keyboard.press("?")
    assert panel.is_visible()
    text = panel.inner_text()
    for words in ("previous layer", "next layer", "go to a filter", "Esc"):
        assert words in text
    page.screenshot(path=str(artifacts / "keys-panel.png"))
    page.keyboard.press("j")  # no key but ? and Esc acts while it is open
    page.keyboard.press("Escape")
    assert not panel.is_visible() and page.url.endswith("004-conv2.html")
    page.click("#keys-button")  # the bar's ? button
    assert panel.is_visible()
    page.click("#keys-close")
    assert not panel.is_visible()
    page.goto((demo["site"] / "index.html").as_uri())
    page.keyboard.press("?")
    assert "search the layer tables" in page.inner_text("#keys-help")
    assert watch.problems == []
    page.close()


def test_without_script_the_pages_keep_their_links_and_hide_the_controls(browser, demo):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto((demo["site"] / "layers/008-conv4.html").as_uri())
    for control in ("#goto-filter", "#card-filter", "#keys-button", "#keys-help"):
        assert not page.locator(control).is_visible(), control
    links = page.locator(".filter-index a")  # every filter's card, one click away
    assert links.count() == page.locator("article.card").count()
    links.nth(17).click()
    assert page.url.endswith("#f17") and _topbar_bottom(page) <= page.locator("#f17").bounding_box()["y"]
    context.close()


def test_single_file_contents_land_below_the_bar_on_a_phone(browser, demo):
    page = browser.new_page(viewport=PHONE)
    page.goto(demo["single"].as_uri())
    link = page.locator(".layers a").nth(2)
    anchor = link.get_attribute("href")[1:]
    link.click()
    top = page.evaluate(f"document.getElementById('{anchor}').getBoundingClientRect().top")
    assert _topbar_bottom(page) <= top < PHONE["height"] / 2
    page.close()


def test_the_single_file_report_renders_every_image_from_itself(browser, demo, artifacts):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    watch = Watch(page)
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(demo["single"].as_uri())
    assert _load_all_images(page) == []
    count = page.evaluate("document.images.length")
    assert count >= 4 * 2 + 4  # every layer's kernels and mosaic, and a feature grid per layer
    assert all(u == demo["single"].as_uri() or u.startswith("data:") for u in requests), requests
    assert page.evaluate("getComputedStyle(document.querySelector('.topbar')).position") == "sticky"  # CSS applied
    assert watch.problems == []
    page.screenshot(path=str(artifacts / "single-file.png"))
    size = demo["single"].stat().st_size
    assert size < 5 * 1024 ** 2, size
    page.close()


@pytest.fixture(scope="module")
def tiny_diff(tmp_path_factory):
    """A diff of three small convs against a copy whose conv_b filter 1 is zeroed (it dies, and
    conv_c's maps change with it), built once for the module."""
    _require_browser()
    import keras

    from cnnviz_report.loading import demo_image_path
    from conftest import make_chain_model

    root = tmp_path_factory.mktemp("diff")
    model = make_chain_model(keras, filters=8)
    model.save(root / "a.keras")
    kernel, bias = model.get_layer("conv_b").get_weights()
    kernel[..., 1], bias[1] = 0.0, -1.0
    model.get_layer("conv_b").set_weights([kernel, bias])
    model.save(root / "b.keras")
    site = root / "diff"
    assert main(["diff", str(root / "a.keras"), str(root / "b.keras"), "--out", str(site), "--quiet",
                 "--ascent-steps", "3", "--images", demo_image_path(), "--cache-dir", str(root / "cache")]) == 0
    return site


@pytest.mark.parametrize("viewport", [{"width": 1366, "height": 900}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_a_diff_filter_anchor_lands_on_its_pictures_below_the_sticky_header(browser, tiny_diff, artifacts, viewport):
    page = browser.new_page(viewport=viewport)
    watch = Watch(page)
    page.goto((tiny_diff / "layers/002-conv_b.html").as_uri() + "#f1")
    _load_all_images(page)
    page.evaluate("location.hash = ''; location.hash = '#f1'")  # once the pictures are laid out
    anchored = page.evaluate("""() => {
        const card = document.getElementById('f1'), box = card.getBoundingClientRect();
        const images = Array.from(card.querySelectorAll('img'));
        return {top: box.top, header: document.querySelector('.topbar').getBoundingClientRect().bottom,
                scrolled: window.scrollY, tag: card.tagName, text: card.innerText,
                background: getComputedStyle(card).backgroundColor,
                pictures: images.filter(i => !i.closest('.colorbar') && i.naturalWidth > 0).length,
                bars: card.querySelectorAll('.colorbar').length, broken: images.filter(i => !(i.naturalWidth > 0)).length};
    }""")
    assert anchored["scrolled"] > 0 and anchored["header"] <= anchored["top"] < viewport["height"] / 2, anchored
    assert anchored["tag"] == "ARTICLE" and "Filter 1" in anchored["text"] and "became dead" in anchored["text"]
    assert anchored["pictures"] == 6 and anchored["bars"] == 4 and anchored["broken"] == 0  # kernel and map: A, B, B − A
    assert anchored["background"] not in ("rgba(0, 0, 0, 0)", "transparent")  # :target is highlighted
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1
    page.screenshot(path=str(artifacts / f"diff-filter-{viewport['width']}.png"))
    assert watch.problems == []
    page.close()


def test_every_diff_page_link_and_image_resolves_without_console_errors(browser, tiny_diff, artifacts):
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    watch = Watch(page)
    checked = _crawl(page, (tiny_diff / "index.html").as_uri(), watch)
    assert checked["pages"] >= 1 + 3 + 2 * (1 + 3 + 1) and checked["images"] > 100
    page.goto((tiny_diff / "index.html").as_uri())
    assert page.locator("td.diff-thumb img").count() >= 3  # conv_b's kernel and map, conv_c's map
    page.screenshot(path=str(artifacts / "diff-index.png"))
    page.close()


@pytest.fixture(scope="module")
def paged(tmp_path_factory):
    """The demo's conv4 with --max-filters all, its 64 cards in pages of 16 (as 512 filters come
    in pages of 64)."""
    _require_browser()
    from cnnviz_report import paths

    site = tmp_path_factory.mktemp("paged") / "site"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(paths, "CARDS_PER_PAGE", 16)
        assert main(["build", "--layers", "conv4", "--max-filters", "all", "--ascent-steps", "1", "--out", str(site),
                     "--quiet", "--no-cache"]) == 0
    return site


def test_cards_on_other_pages_are_reached_by_go_to_filter_and_by_their_tiles(browser, paged, artifacts):
    page = browser.new_page(viewport=PHONE)
    watch = Watch(page)
    layer = (paged / "layers/008-conv4.html").as_uri()
    page.goto(layer)
    page.keyboard.press("g")
    page.keyboard.type("40")
    page.keyboard.press("Enter")
    page.wait_for_url("**/008-conv4-cards-3.html#f40")
    assert _topbar_bottom(page) <= page.locator("#f40").bounding_box()["y"] < PHONE["height"] / 2
    page.screenshot(path=str(artifacts / "go-to-filter-on-another-page.png"))
    page.goto(layer)
    page.locator('a[title="filter 50: its card"]').click()  # a mosaic tile
    page.wait_for_url("**/008-conv4-cards-4.html#f50")
    page.locator(".card-pages a", has_text="0–15").first.click()  # back to the first page's cards
    page.wait_for_url("**/008-conv4.html#filter-cards")
    assert watch.problems == []
    checked = _crawl(page, (paged / "index.html").as_uri(), watch)
    assert checked["pages"] == 6  # the index, the layer page, its 3 other card pages, the image page
    page.close()


@pytest.fixture(scope="module")
def few_cards(tmp_path_factory):
    """The demo's conv4 (64 filters) with cards for its first 4 only (--max-filters 4)."""
    _require_browser()
    site = tmp_path_factory.mktemp("few-cards") / "site"
    assert main(["build", "--layers", "conv4", "--max-filters", "4", "--ascent-steps", "1", "--out", str(site),
                 "--quiet", "--no-cache"]) == 0
    return site


def test_go_to_filter_answers_every_filter_number(browser, few_cards, artifacts):
    """Every number 0-63 lands somewhere: its card, or a line saying it has none and how to get
    one; a number past the layer's filters says how many it has."""
    page = browser.new_page(viewport=PHONE)
    watch = Watch(page)
    layer = (few_cards / "layers/008-conv4.html").as_uri()
    page.goto(layer)
    assert page.get_attribute("#goto-number", "placeholder") == "0–63"
    runs = page.get_attribute("#goto-filter", "data-card-pages").split()
    carded = {n for run in runs for first, last in [run.split(":")[0].split("-")]
              for n in range(int(first), int(last) + 1)}
    assert set(range(4)) <= carded and len(carded) < 64
    missing = min(set(range(64)) - carded)

    def go(number: str) -> str:
        page.evaluate("document.activeElement && document.activeElement.blur()")  # g types nothing into the box
        page.keyboard.press("g")
        page.keyboard.type(number)
        page.keyboard.press("Enter")
        return page.inner_text("#goto-message")

    message = go(str(missing))
    assert message == (f"Filter {missing} has no card: the report draws filters 0–3 (--max-filters 4)"
                       + (" and the filters a health finding names" if max(carded) > 3 else "")
                       + ". Rebuild with --max-filters all, or with --layers conv4 --max-filters all for this "
                       "layer's alone.")
    assert page.locator("#goto-message").is_visible()
    page.screenshot(path=str(artifacts / "go-to-filter-without-a-card.png"))
    page.fill("#goto-number", "")  # g selects the number typed before; the next one replaces it
    assert go("64") == "conv4 has 64 filters: give a number from 0 to 63."
    page.fill("#goto-number", "")
    go("2")
    _wait_until(page, "location.hash === '#f2'")
    assert page.inner_text("#goto-message") == ""
    assert watch.problems == []
    page.close()


def test_a_page_open_during_a_served_build_shows_its_mosaic_when_its_layer_lands(browser, tmp_path, artifacts):
    """build --serve: the last layer's page, opened at the first look, reloads itself when that
    layer's ascent lands (the served pages may ask the server; the files on disk may not)."""
    out = tmp_path / "site"
    process = subprocess.Popen(
        [sys.executable, "-m", "cnnviz_report", "build", "--serve", "--port", "0", "--out", str(out),
         "--ascent-steps", "60", "--max-filters", "32", "--no-cache", "--no-explain"],
        cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent)),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = [process.stdout.readline()]
        while not lines[-1].startswith("First look: "):
            assert lines[-1], lines  # the build ended before its first look
            lines.append(process.stdout.readline())
        url = lines[0].split()[1]
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        watch = Watch(page)
        page.goto(url + "layers/008-conv4.html")
        assert "are being drawn" in page.inner_text("main") and page.locator("ol.mosaic").count() == 0
        deadline = time.monotonic() + 300
        while True:  # the page reloads itself; between its loads there is no page to ask
            try:
                if page.locator("ol.mosaic img").count() > 0:
                    break
            except Exception:
                pass
            assert time.monotonic() < deadline, "the page never showed its mosaic"
            page.wait_for_timeout(200)
        page.wait_for_load_state("load")
        page.screenshot(path=str(artifacts / "served-layer-landed.png"))
        assert "connect-src 'self'" in page.get_attribute('meta[http-equiv="Content-Security-Policy"]', "content")
        assert "connect-src" not in (out / "layers" / "008-conv4.html").read_text()  # the file keeps today's CSP
        assert watch.problems == []
        page.close()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) in (0, 130)  # stopped during the build or after it
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
