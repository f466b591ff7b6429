"""The presentation from hand-made records: pages, summary.md, health.csv, the single file and the
diff pages, with no model and no TensorFlow (milliseconds each)."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
from PIL import Image

from cnnviz_report.stages import Stage, Stages
from cnnviz_report import paths
from cnnviz_report.config import ReportConfig
from cnnviz_report.health import KernelFindings, LayerHealth
from cnnviz_report.layers import LayerInfo, ModelInfo
from cnnviz_report.diff_records import (DiffReport, FilterChange, FilterDiffPictures, ImageDiff, LayerDiff, Triple,
                                        ranked_by_response, ranked_layers)
from cnnviz_report.records import (AscentQuality, ChannelStats, FeatureAssets, FilterCard, ImageReport, ImageStat,
                                   LayerReport, Report)
from cnnviz_report.render import DIVERGING, ColourScale, ImageAsset
from cnnviz_report.single_file import render_single_file
from cnnviz_report.site import build_pages, write_diff_site, write_gallery_site, write_site
from cnnviz_report.staging import write_text
from cnnviz_report.summary import diff_summary, health_csv, summary_markdown

ROOT = Path(__file__).parent.parent


def _png(root: Path, site_path: str, alt: str, side: int = 8) -> ImageAsset:
    target = root / site_path
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((side, side, 3), 100, np.uint8)).save(target)
    return ImageAsset(site_path, side, side, alt)


def _conv(index: int, name: str, filters: int = 4) -> LayerInfo:
    return LayerInfo(index, name, (), 0, "Conv2D", (None, 8, 8, filters), 3 * 3 * 3 * filters + filters,
                     kernel_shape=(3, 3, 3, filters), filters=filters, conv_kind="conv2d", receptive_field=(3, 3),
                     effective_stride=(1, 1), unit_layers=("bn", "relu"))


def make_report(root: Path, name: str = "conv<b>", dead: tuple[int, ...] = (2,)) -> Report:
    """A one-layer, one-image report whose filter 2 is dead and filter 3 repeats filter 0."""
    info = _conv(1, name)
    slug = paths.layer_slug(info.index, info.name)
    image = ImageReport(0, "bird.png", "01-bird", "/photos/bird.png", "0" * 64,
                        _png(root, paths.image_original("01-bird"), "input image bird.png"))
    maps = np.array([[0.5, 1.5, 0.0, 0.5]])
    stats = ChannelStats(mean=maps, min=np.zeros_like(maps), max=maps * 2, active=np.array([[0.5, 0.9, 0.0, 0.5]]))
    cards = tuple(FilterCard(
        number, _png(root, paths.filter_asset(slug, number, "kernel"), f"kernel of filter {number}"),
        ascent=_png(root, paths.filter_asset(slug, number, "ascent"), f"ascent of filter {number}"),
        ascent_quality=AscentQuality(float(number), float(number) / 2, 0.1 * number), ascent_dead=number in dead,
        maps=_png(root, paths.filter_asset(slug, number, "maps"), f"maps of filter {number}"),
        top_images=(ImageStat(0, float(maps[0, number]), float(maps[0, number] * 2), 0.5),)) for number in range(4))
    feature = FeatureAssets(0, _png(root, paths.layer_asset(slug, "fmaps", "01-bird"), "maps"),
                            _png(root, paths.layer_asset(slug, "mean", "01-bird"), "mean"),
                            _png(root, paths.layer_asset(slug, "belt", "01-bird"), "belt"), 4, 4, 0)
    kernel = KernelFindings(norms=(1.0, 2.0, 0.5, 1.0), nonfinite=(), duplicates=((3, 0, 1.0),), norm_outliers=())
    health = LayerHealth(4, kernel, 1, dead=dead, ascent_dead=dead, rule="dead: at 0")
    layer = LayerReport(
        info, slug, filters=_png(root, paths.layer_asset(slug, "filters"), "kernels"), filters_shown=4,
        channels_shown=3, channels_total=3, mosaic=_png(root, paths.layer_asset(slug, "mosaic"), "mosaic"),
        mosaic_filters=4, mosaic_dead=dead, mosaic_indices=(0, 1, 2, 3), mosaic_canvas=(32, 32),
        features=(feature,), thumbnail=_png(root, paths.layer_asset(slug, "thumb"), "thumb"), cards=cards,
        stats=stats, floor=np.zeros(4), health=health)
    model = ModelInfo("toy", (None, 8, 8, 3), (None, 10), 112, 112,
                      (LayerInfo(0, "input", (), 0, "InputLayer", (None, 8, 8, 3), 0), info))
    settings = dict(ReportConfig().settings, ascent_steps=30, ascent_learning_rate=10.0)
    # its stage, and a second stage whose kept layers were all 1x1 (--per-stage last drew none)
    stages = Stages((Stage("block<1>", (1,), ((8, 8),), (1, 1), (3, 3)), Stage("block2", (9,), ((4, 4),), (2, 2))),
                    "the layer names (blockN_)")
    return Report("Toy report", model, "toy.keras", "file", "from the model file", "unit", (8, 8), 3, (layer,),
                  (image,), (), settings, stages=stages, unpicked_stages=("block2",))


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.targets, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if attrs.get(key):
                self.targets.append(attrs[key])


def test_pages_render_from_records_and_every_link_resolves(tmp_path):
    report = make_report(tmp_path)
    written = write_site(report, str(tmp_path))
    write_text(str(tmp_path), paths.SUMMARY_FILE, summary_markdown(report))
    write_text(str(tmp_path), paths.HEALTH_FILE, health_csv(report))
    assert sorted(written) == ["images/01-bird.html", "index.html", "layers/001-conv-b.html"]
    layer_page = (tmp_path / "layers/001-conv-b.html").read_text(encoding="utf-8")
    assert "conv&lt;b&gt;" in layer_page and "conv<b>" not in layer_page  # a user's name is escaped
    assert "conv&lt;b&gt; → bn → relu" in layer_page  # the unit, in words
    for page in written:
        parser = _Links()
        parser.feed((tmp_path / page).read_text(encoding="utf-8"))
        for target in parser.targets:
            if target.startswith(("http", "data:", "#")):
                continue
            file_part = target.split("#")[0]
            assert (tmp_path / page).parent.joinpath(file_part).resolve().exists(), (page, target)
    assert {f"f{n}" for n in range(4)} <= _ids(layer_page)


def _ids(html: str) -> set[str]:
    parser = _Links()
    parser.feed(html)
    return parser.ids


class _GotoForm(HTMLParser):
    def __init__(self):
        super().__init__()
        self.form, self.input = {}, {}

    def handle_starttag(self, tag, attrs):
        if dict(attrs).get("id") == "goto-filter":
            self.form = dict(attrs)
        if dict(attrs).get("id") == "goto-number":
            self.input = dict(attrs)


def test_go_to_filter_takes_every_filter_number_and_knows_which_have_a_card(tmp_path, monkeypatch):
    """12 filters, cards for 0-3 (--max-filters 4) and a card of numbers for the dead filter 9, 3
    cards a page: the form takes 0-11 (not 0-9, the highest card), and each page lists the runs of
    numbers it holds, not its range (3-9 would send 5 to a page without its card); site.js says
    why 4-8 and 10-11 have none from the filters, the drawn count and the layer's name."""
    monkeypatch.setattr(paths, "CARDS_PER_PAGE", 3)
    report = make_report(tmp_path)
    layer = report.layers[0]
    health = replace(layer.health, filters=12, dead=(2, 9),
                     kernel=replace(layer.health.kernel, norms=(1.0,) * 12))
    report = replace(report, layers=(replace(layer, info=replace(layer.info, filters=12), health=health),))
    view = next(page.context["layer"] for page in build_pages(report) if page.template == "layer.html")
    assert [page["runs"] for page in view["card_pages"]] == [[[0, 2]], [[3, 3], [9, 9]]]
    assert view["card_numbers"] == {"first": 0, "last": 9, "filters": 12, "drawn": 4}
    write_site(report, str(tmp_path))
    for page in ("layers/001-conv-b.html", "layers/001-conv-b-cards-2.html"):
        parser = _GotoForm()
        parser.feed((tmp_path / page).read_text(encoding="utf-8"))
        assert parser.form["data-card-pages"] == ("0-2:001-conv-b.html 3-3:001-conv-b-cards-2.html "
                                                  "9-9:001-conv-b-cards-2.html"), page
        assert (parser.form["data-filters"], parser.form["data-drawn"], parser.form["data-layer"]) == \
            ("12", "4", "conv<b>")
        assert "novalidate" in parser.form  # site.js answers numbers without a card, not the browser
        assert (parser.input["min"], parser.input["max"], parser.input["placeholder"]) == ("0", "11", "0–11")
    script = (ROOT / "templates/static/site.js").read_text(encoding="utf-8")
    assert "has no card: the report draws filters 0–" in script and "--max-filters all" in script


def test_pages_are_typed_and_found_by_template_not_position(tmp_path):
    pages = build_pages(make_report(tmp_path))
    assert [page.template for page in pages] == ["index.html", "layer.html", "image.html"]
    assert pages[1].context["layer"]["mosaic_dead"] == 1 and pages[1].context["layer"]["mosaic_canvas"] == "32"


def test_layer_page_contents_card_findings_and_keys_from_the_records(tmp_path):
    report = make_report(tmp_path)
    written = write_site(report, str(tmp_path))
    context = next(page.context for page in build_pages(report) if page.template == "layer.html")
    layer = context["layer"]
    assert [entry["label"] for entry in layer["contents"]] == ["Kernel weights", "Gradient ascent", "Feature maps for",
                                                               "Each filter (4 cards)"]
    assert [card["findings"] for card in layer["cards"]] == ["", "", "dead ascent_dead", "duplicates"]
    assert [(c["key"], c["count"]) for c in layer["card_pages"][0]["card_filter"]] == [("", 4), ("*", 2), ("dead", 1), ("duplicates", 1),
                                                                       ("ascent_dead", 1)]
    assert layer["card_numbers"] == {"first": 0, "last": 3, "filters": 4, "drawn": 4}
    assert [key["names"] for key in context["keys"]] == [["←", "k"], ["→", "j"], ["g"], ["?"], ["Esc"]]
    html = (tmp_path / "layers/001-conv-b.html").read_text(encoding="utf-8")
    parser = _Links()
    parser.feed(html)
    in_page = {target[1:] for target in parser.targets if target.startswith("#")}
    assert {"contents", "filters", "ascent", "image-1", "filter-cards", "f2"} <= in_page <= parser.ids
    assert 'data-findings="dead ascent_dead"' in html and "dead, ascent-dead" in html  # the card and its link
    for page in written:  # every page has the keys panel, listing its own keys
        assert 'id="keys-help"' in (tmp_path / page).read_text(encoding="utf-8")


def test_only_a_tall_narrow_picture_scrolls_in_a_box():
    from cnnviz_report.site.common import _asset

    assert _asset(ImageAsset("grid.png", 102, 1677, "3 channels, 64 filters"))["tall"]  # shown at 204 x 3354
    assert _asset(ImageAsset("grid.png", 856, 1677, "64 channels, 64 filters"))["tall"]
    assert not _asset(ImageAsset("mosaic.png", 1155, 1259, "a square mosaic"))["tall"]
    assert not _asset(ImageAsset("grid.png", 440, 845, "short enough"))["tall"]


def test_summary_and_health_csv_agree_with_the_records(tmp_path):
    report = make_report(tmp_path)
    summary = summary_markdown(report)
    row = next(line for line in summary.splitlines() if "conv\\<b\\>" in line or "conv&lt;b&gt;" in line)
    cells = [cell.strip() for cell in row.split("|")[1:-1]]
    assert cells[-6:] == ["3", "1", "0", "1", "0", "1/4"]  # RF, dead, constant, duplicates, NaN, ascent-dead
    rows = list(csv.DictReader(io.StringIO(health_csv(report))))
    assert [r["filter"] for r in rows] == ["0", "1", "2", "3"]
    assert [r["dead_on_images"] for r in rows] == ["0", "0", "1", "0"]
    assert rows[3]["duplicate_of"] == "0" and rows[1]["max_activation"] == "3"
    # the ascent's quality: activation, under transforms, kept share (none without a positive response)
    assert [r["ascent_activation"] for r in rows] == ["0", "1", "2", "3"]
    assert [r["ascent_transformed"] for r in rows] == ["0", "0.5", "1", "1.5"]
    assert [r["ascent_kept"] for r in rows] == ["", "0.5", "0.5", "0.5"]
    assert [r["ascent_high_frequency"] for r in rows] == ["0", "0.1", "0.2", "0.3"]


def test_single_file_embeds_the_pictures_of_the_records(tmp_path):
    html = render_single_file(make_report(tmp_path), str(tmp_path), max_images=1)
    assert "Toy report" in html and "conv&lt;b&gt;" in html and 'src="layers/' not in html
    for alt in ("kernels", "mosaic", "maps"):  # the layer's pictures, embedded
        assert f'alt="{alt}"' in html
    assert html.count('src="data:image/') == html.count("<img ")


def _triple(root: Path, slug: str, kind: str, number: int | None = None) -> Triple:
    """A | B on one shared diverging scale, B − A on its own, as the differences phase draws them."""
    def asset(side: str, magnitude: float) -> ImageAsset:
        site_path = (paths.filter_asset(slug, number, f"{kind}-{side}") if number is not None
                     else paths.layer_asset(slug, f"{kind}-{side}"))
        return replace(_png(root, site_path, f"{kind} {side}"),
                       scale=ColourScale(DIVERGING, -magnitude, magnitude, f"{kind} {side} scale"))
    return Triple(asset("a", 0.5), asset("b", 0.5), asset("delta", 0.25))


def _layer_diff(root: Path, info: LayerInfo, slug: str, changes, response: float | None, **fields) -> LayerDiff:
    return LayerDiff(info, slug, changes, became_dead=(), came_alive=(), response_change=response, **fields)


def make_diff(root: Path, version: str | None = None) -> DiffReport:
    """Two one-layer reports (sites under ``a/`` and ``b/``) and their diff: filter 1's kernel and
    response changed, filter 0's response only; filter 1 became dead, filter 2 came alive."""
    a, b = make_report(root / "a", dead=(2,)), make_report(root / "b", dead=(1,))
    if version is not None:
        a, b = replace(a, version=version), replace(b, version=version)
    info, slug = a.layers[0].info, a.layers[0].slug
    changes = (FilterChange(1, 0.5, 0.8, 0.9), FilterChange(0, 0.0, 1.0, 0.2), FilterChange(2, 0.0, 1.0, 0.0),
               FilterChange(3, 0.0, 1.0, 0.0))
    image = ImageDiff("bird.png", _triple(root, slug, "fmaps"),
                      _png(root, paths.layer_asset(slug, "difference", "01-bird"), "difference"), 0.3)
    pictures = (FilterDiffPictures(1, _triple(root, slug, "kernel", 1), _triple(root, slug, "map", 1), "bird.png"),
                FilterDiffPictures(0, None, _triple(root, slug, "map", 0), "bird.png"))
    layer = LayerDiff(info, slug, changes, became_dead=(1,), came_alive=(2,), images=(image,),
                      filter_grids=_triple(root, slug, "filters"), filter_pictures=pictures, response_change=0.3)
    return DiffReport(a, b, "before.keras", "after.keras", (layer,))


def test_diff_pages_and_summary_from_records(tmp_path):
    diff = make_diff(tmp_path)
    for side, report in (("a", diff.a), ("b", diff.b)):
        write_site(report, str(tmp_path / side))
    write_diff_site(diff, str(tmp_path))
    page = (tmp_path / "layers/001-conv-b.html").read_text(encoding="utf-8")
    assert "became dead" in page and "came alive" in page and "a/layers/001-conv-b.html#f1" in page
    card = page.split('id="f1"')[1].split("</article>")[0]  # the changed filter's anchor lands on its pictures
    for kind in ("kernel", "map"):
        assert all(f"f001-{kind}-{side}.png" in card for side in ("a", "b", "delta")), kind
    assert card.count('class="colorbar"') == 4  # A | B share one bar, B − A has its own; kernel and map
    assert "kernel change <strong>0.5</strong>" in card and "response change <strong>0.9</strong>" in card
    unchanged_kernel = page.split('id="f0"')[1].split("</article>")[0]
    assert "kernel unchanged" in unchanged_kernel and "f000-map-delta.png" in unchanged_kernel
    assert "f000-kernel" not in unchanged_kernel
    ids = _ids(page)
    assert {f"f{n}" for n in range(4)} <= ids  # filters without pictures are anchored on their row
    assert '<tr id="f2">' in page and '<tr class="changed"><td><a href="#f1">' in page  # changed rows are marked
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert 'class="diff-thumb"><a href="layers/001-conv-b.html#f1"><img src="layers/001-conv-b/f001-kernel-delta.png"' in index
    assert '<img src="layers/001-conv-b/difference-01-bird.png"' in index
    summary = diff_summary(diff)
    write_text(str(tmp_path), paths.SUMMARY_FILE, summary)
    assert summary.startswith("# Checkpoint diff: before.keras → after.keras")
    assert "[1 (0.5)](layers/001-conv-b.html#f1)" in summary and "| 1 | 2 |" in summary
    assert "| 0.3 (#1) | 0.125 (#1) |" in summary  # response change, then kernel change, each with its rank
    for page_path in ("index.html", "layers/001-conv-b.html"):
        parser = _Links()
        parser.feed((tmp_path / page_path).read_text(encoding="utf-8"))
        for target in parser.targets:
            file_part = target.split("#")[0]
            assert not file_part or (tmp_path / page_path).parent.joinpath(file_part).resolve().exists(), target


def test_layers_rank_by_response_change_so_a_downstream_layer_shows(tmp_path):
    """conv2's kernels did not change but its input did (conv1 changed): it ranks above conv3,
    where nothing changed, by response; by kernel change it ties with conv3."""
    infos = [_conv(index, f"conv{index}") for index in (1, 2, 3)]
    changed, same = (FilterChange(0, 0.4, 0.9, 0.5),), (FilterChange(0, 0.0, 1.0, 0.0),)
    diffs = [_layer_diff(tmp_path, infos[0], "001-conv1", changed, 0.5),
             _layer_diff(tmp_path, infos[1], "002-conv2", (FilterChange(0, 0.0, 1.0, 0.3),), 0.3),
             _layer_diff(tmp_path, infos[2], "003-conv3", same, 0.0)]
    assert [d.info.name for d in ranked_by_response(diffs)] == ["conv1", "conv2", "conv3"]
    assert [d.info.name for d in ranked_layers(diffs)] == ["conv1", "conv2", "conv3"]  # ties keep model order
    assert [d.info.name for d in ranked_by_response(diffs[::-1])] == ["conv1", "conv2", "conv3"]
    assert diffs[1].response_ranked == diffs[1].changes and diffs[2].response_ranked == ()
    unmeasured = [replace(d, response_change=None) for d in diffs]  # no images: kernel order
    assert [d.info.name for d in ranked_by_response(unmeasured[::-1])] == ["conv1", "conv2", "conv3"]


def test_the_presentation_imports_neither_tensorflow_nor_analysis(tmp_path):
    """Importing the presentation, and rendering every kind of site with it, loads no framework
    and nothing of analysis/ (the code that calls one)."""
    code = f"""if True:
        import sys
        def framework():
            return sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")
                          or m.startswith("cnnviz_report.analysis"))
        import cnnviz_report.site, cnnviz_report.summary, cnnviz_report.single_file, cnnviz_report.records
        import cnnviz_report.diff_records, cnnviz_report.ascent_rules
        import cnnviz_report.staging, cnnviz_report.progress
        print(framework())
        sys.path.insert(0, "tests")
        from pathlib import Path
        from test_presentation import make_diff, make_report
        from cnnviz_report.site import write_diff_site, write_gallery_site, write_site
        from cnnviz_report.single_file import render_single_file
        from cnnviz_report.summary import diff_summary, health_csv, summary_markdown
        root = Path({str(tmp_path)!r})
        report, diff = make_report(root / "report"), make_diff(root / "diff")
        write_site(report, str(root / "report"))
        write_diff_site(diff, str(root / "diff"))
        write_gallery_site("gallery", [("01-toy", report)], str(root / "gallery"))
        summary_markdown(report), health_csv(report), diff_summary(diff)
        render_single_file(report, str(root / "report"), max_images=1)
        print(framework())
    """
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.splitlines() == ["[]", "[]"]
    assert (tmp_path / "report/index.html").is_file() and (tmp_path / "gallery/index.html").is_file()


GOLDEN = ROOT / "tests" / "golden"


def test_every_page_matches_its_golden_html(tmp_path, monkeypatch):
    """A report's, a diff's and a gallery's pages from hand-made records, byte for byte as kept in
    tests/golden/ (so moving the presentation's code cannot change a page unseen). After a
    deliberate change: CNNVIZ_UPDATE_GOLDEN=1 python -m pytest tests/test_presentation.py -k golden -n 0"""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")  # the pages' date; the version is set below
    report = replace(make_report(tmp_path / "report"), version="0.0-golden")
    write_site(report, str(tmp_path / "report"))
    diff = make_diff(tmp_path / "diff", version="0.0-golden")
    write_diff_site(diff, str(tmp_path / "diff"))
    other = replace(report, model_name="other.keras")
    write_gallery_site("Golden gallery", [("01-toy", report), ("02-other", other)], str(tmp_path / "gallery"))
    built = {str(page.relative_to(tmp_path)): page.read_text(encoding="utf-8")
             for page in sorted(tmp_path.rglob("*.html"))}
    assert len(built) == 6  # the report's index, layer and image page; the diff's index and layer; the gallery
    if os.environ.get("CNNVIZ_UPDATE_GOLDEN"):
        for name, html in built.items():
            (GOLDEN / name).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / name).write_text(html, encoding="utf-8")
    kept = {str(page.relative_to(GOLDEN)) for page in GOLDEN.rglob("*.html")}
    assert kept == set(built)
    for name, html in built.items():
        assert html == (GOLDEN / name).read_text(encoding="utf-8"), name


def test_the_templates_are_found_in_a_checkout_and_in_a_wheel(tmp_path, monkeypatch):
    """site/common.py sits one folder below the package: the checkout's top-level templates/, or
    the wheel's cnnviz_report/templates/ (pyproject maps it there)."""
    from cnnviz_report.site import common

    assert common.templates_dir() == ROOT / "templates"
    wheel = tmp_path / "cnnviz_report"
    (wheel / "templates").mkdir(parents=True)
    (wheel / "templates" / "index.html").write_text("", encoding="utf-8")
    monkeypatch.setattr(common, "__file__", str(wheel / "site" / "common.py"))
    assert common.templates_dir() == wheel / "templates"


def test_every_subpackage_is_listed_for_the_wheel():
    """pyproject.toml names the packages one by one: a folder left out is missing from the wheel."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "cnnviz_report").rglob("__init__.py")}
    assert found <= listed


def test_the_index_groups_layers_by_stage_and_a_layer_page_names_its_stage(tmp_path):
    report = make_report(tmp_path)
    write_site(report, str(tmp_path))
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "2 stages, found by the layer names (blockN_)" in index
    assert '<a href="#stage-block-1">block&lt;1&gt;</a>' in index  # the anchor from safe characters only
    assert '<section class="stage" id="stage-block-1">' in index
    # resolution, receptive field, counts: filter 2 is dead and ascent-dead
    assert "8 px · receptive field 3 px · 1 conv layer · 4 filters · 1 dead · 1 ascent-dead" in index
    assert "No layer drawn: the layers kept here are all 1x1 convs" in index
    layer = (tmp_path / "layers" / f"{report.layers[0].slug}.html").read_text(encoding="utf-8")
    assert 'Stage <a href="../index.html#stage-block-1">block&lt;1&gt;</a> (8 px), layer 1 of 1 drawn in it' in layer
