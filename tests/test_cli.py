"""End to end through `main([...])`: exit codes, one-line errors, complete sites, safe folders."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnnviz_report import paths
from cnnviz_report.cli import main
from conftest import assert_valid_links, site_links

PICTURES = ("filters", "mosaic")
PER_IMAGE = ("fmaps", "mean", "belt")


def _table_rows(html: str, table_class: str) -> list[str]:
    table = re.split(f'<table class="{table_class}"[ >]', html, maxsplit=1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr[ >].*?</tr>", table.split("<tbody>", 1)[1], flags=re.S)


def test_build_writes_a_complete_site_for_a_small_model(tiny_model_file, photo_path, tmp_path, capsys):
    out = tmp_path / "site"
    code = main(["build", tiny_model_file, "--images", photo_path, "--out", str(out), "--ascent-steps", "3"])
    assert code == 0
    captured = capsys.readouterr()
    assert re.search(r"\[ ?1/\d+\] images: pictures and predictions", captured.err)
    assert re.search(r"\[ ?2/\d+\] conv_a: filters", captured.err)
    assert "Built 2 conv-layer pages" in captured.out

    assert assert_valid_links(out) > 20
    index = (out / "index.html").read_text()
    all_rows = _table_rows(index, "layers all searchable")
    from keras.saving import load_model

    assert len(all_rows) == len(load_model(tiny_model_file).layers) == 5  # every layer, input included
    for name in ("pixels", "conv_a", "conv_b", "gap", "head"):
        assert any(f">{name}<" in row for row in all_rows), name
    assert len(_table_rows(index, "layers searchable conv-table")) == 2  # one stage: both at 8 px
    assert "(3, 3, 3, 4)" in index and "(None, 8, 8, 4)" in index

    links = site_links(out)["index.html"]
    for slug in ("001-conv_a", "002-conv_b"):
        page = paths.layer_page(slug)
        assert page in links
        layer_links = site_links(out)[page]
        for kind in PICTURES:
            assert f"{slug}/{kind}.png" in layer_links
        for kind in PER_IMAGE:
            assert f"{slug}/{kind}-01-grace_hopper.png" in layer_links
        assert "../index.html" in layer_links
    assert "layers/001-conv_a/filters-rgb.png" in {p.relative_to(out).as_posix() for p in out.rglob("*.png")}
    assert 'rel="next" href="002-conv_b.html"' in (out / "layers/001-conv_a.html").read_text()
    assert 'rel="prev" href="001-conv_a.html"' in (out / "layers/002-conv_b.html").read_text()
    image_page = (out / "images/01-grace_hopper.html").read_text()
    assert "../layers/002-conv_b/fmaps-01-grace_hopper.png" in image_page
    assert (out / ".nojekyll").exists()
    manifest = json.loads((out / paths.MARKER_FILE).read_text())
    assert manifest["tool"] == "cnnviz_report" and len(manifest["images"][0]["sha256"]) == 64


def test_nested_model_pages_include_the_inner_conv_layers(nested_model_file, photo_path, tmp_path):
    out = tmp_path / "site"
    assert main(["build", nested_model_file, "--images", photo_path, "--out", str(out), "--quiet",
                 "--ascent-steps", "2"]) == 0
    assert_valid_links(out)
    pages = sorted(p.name for p in (out / "layers").glob("*.html"))
    assert pages == ["001-stem.html", "003-inner_conv.html", "004-inner_depthwise.html",
                     "007-head_separable.html", "008-up.html"]
    inner = (out / "layers/003-inner_conv.html").read_text()
    assert "backbone/inner_conv" in inner and "fmaps-01-grace_hopper.png" in inner and "mosaic.png" in inner
    assert "pointwise kernel" in (out / "layers/007-head_separable.html").read_text()


def test_demo_build_with_no_model(tmp_path):
    out = tmp_path / "demo"
    assert main(["build", "--out", str(out), "--quiet"]) == 0
    assert assert_valid_links(out) > 40
    layer_pages = sorted(p.name for p in (out / "layers").glob("*.html"))
    assert layer_pages == ["002-conv1.html", "004-conv2.html", "006-conv3.html", "008-conv4.html"]
    index = (out / "index.html").read_text()
    assert "cnnviz demo CNN" in index and "grace_hopper.jpg" in index
    from PIL import Image

    mosaic = np.asarray(Image.open(out / "layers/008-conv4/mosaic.png").convert("L"), dtype=float)
    grid = np.asarray(Image.open(out / "layers/002-conv1/fmaps-01-grace_hopper.png").convert("L"), dtype=float)
    assert mosaic.std() > 20 and grid.std() > 20  # pictures, not flat grey


def test_layers_option_selects_and_unknown_layers_fail_in_one_line(tiny_model_file, tmp_path, capsys):
    out = tmp_path / "site"
    assert main(["build", tiny_model_file, "--layers", "conv_b", "--out", str(out), "--quiet", "--ascent-steps", "1"]) == 0
    assert [p.name for p in (out / "layers").glob("*.html")] == ["002-conv_b.html"]
    capsys.readouterr()
    assert main(["build", tiny_model_file, "--layers", "nope", "--out", str(tmp_path / "other"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnviz_report: error: --layers: no conv layer named nope") and "conv_a" in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("args, fragment", [
    (["build", "vgg17", "--weights", "none"], "cnnviz_report: error: vgg17: not a model file and not a keras.applications name"),
    (["build", "missing_model.keras"], "cnnviz_report: error: missing_model.keras: no such model file"),
    (["build", "--max-filters", "0"], "cnnviz_report: error: options: --max-filters must be at least 1"),
])
def test_bad_input_gives_one_line_and_exit_2(args, fragment, tmp_path, capsys):
    assert main(args + ["--out", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(fragment) and len(err.splitlines()) == 1
    assert not (tmp_path / "site").exists()


def test_bad_image_fails_naming_it_and_leaves_no_output(tiny_model_file, tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    assert main(["build", tiny_model_file, "--images", str(bad), "--out", str(tmp_path / "site")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"cnnviz_report: error: {bad}: not an image in an allowed format (JPEG, PNG, BMP, GIF, WEBP, TIFF)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.jpg", "tiny.keras"]


def test_a_folder_the_tool_did_not_make_is_never_touched(tiny_model_file, tmp_path, capsys):
    mine = tmp_path / "my-work"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    assert main(["build", tiny_model_file, "--out", str(mine), "--quiet"]) == 2
    assert "not made by cnnviz_report" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"] and (mine / "thesis.tex").read_text() == "precious"


def test_rebuilding_replaces_the_tools_own_site(tiny_model_file, tmp_path):
    out = tmp_path / "site"
    assert main(["build", tiny_model_file, "--out", str(out), "--quiet", "--ascent-steps", "1", "--title", "first"]) == 0
    (out / "stale.html").write_text("left from an old build")
    assert main(["build", tiny_model_file, "--out", str(out), "--quiet", "--ascent-steps", "1", "--title", "second"]) == 0
    assert "second" in (out / "index.html").read_text() and not (out / "stale.html").exists()
    assert [p.name for p in tmp_path.iterdir() if "cnnviz" in p.name] == []  # no staging leftovers


def test_hostile_layer_names_are_escaped_and_never_shape_paths(keras, tmp_path):
    name = "<img src=x onerror=alert(1)>"
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, name=name)(inputs))
    path = tmp_path / "hostile.keras"
    model.save(path)
    out = tmp_path / "site"
    assert main(["build", str(path), "--out", str(out), "--quiet", "--ascent-steps", "1"]) == 0
    for page in out.rglob("*.html"):
        html = page.read_text()
        assert "<img src=x" not in html, page
    assert "&lt;img src=x onerror=alert(1)&gt;" in (out / "index.html").read_text()
    assert [p.name for p in (out / "layers").glob("*.html")] == ["001-img-src-x-onerror-alert-1.html"]


def test_help_is_instant_and_does_not_import_tensorflow():
    probe = "import sys; from cnnviz_report.cli import _parser; _parser(); print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).parent.parent)
    assert result.stdout.strip() == "False"
    help_text = subprocess.run([sys.executable, "-m", "cnnviz_report", "build", "--help"], capture_output=True,
                               text=True, check=True, cwd=Path(__file__).parent.parent).stdout
    for option in ("--images", "--out", "--weights", "--layers", "--max-filters", "--title", "--seed", "--quiet"):
        assert option in help_text


def test_channels_first_model_renders_like_its_channels_last_twin(keras, photo_path, tmp_path):
    """Same weights, one model reading (C, H, W): the feature maps must be the same pictures."""
    sites = {}
    for fmt, shape in (("channels_last", (12, 12, 3)), ("channels_first", (3, 12, 12))):
        inputs = keras.Input(shape)
        model = keras.Model(inputs, keras.layers.Conv2D(4, 3, data_format=fmt, activation="relu", name="c")(inputs))
        model.set_weights([np.random.default_rng(9).normal(size=w.shape).astype("float32") for w in model.get_weights()])
        path = tmp_path / f"{fmt}.keras"
        model.save(path)
        sites[fmt] = tmp_path / f"site-{fmt}"
        assert main(["build", str(path), "--images", photo_path, "--out", str(sites[fmt]), "--quiet",
                     "--ascent-steps", "2"]) == 0
    from PIL import Image

    for kind in ("fmaps-01-grace_hopper", "belt-01-grace_hopper", "mosaic", "filters"):
        first = np.asarray(Image.open(sites["channels_first"] / f"layers/001-c/{kind}.png"), dtype=int)
        last = np.asarray(Image.open(sites["channels_last"] / f"layers/001-c/{kind}.png"), dtype=int)
        assert first.shape == last.shape and np.abs(first - last).max() <= 2, kind


def test_progress_reports_every_step_with_work_weighted_by_cost(nested_model_file, photo_path, tmp_path):
    from cnnviz_report.build import build_site
    from cnnviz_report.config import ReportConfig

    heard = []
    build_site(ReportConfig(model=nested_model_file, images=(photo_path,), out=str(tmp_path / "s"), ascent_steps=2),
               progress=heard.append)
    assert all(a.work_done < b.work_done for a, b in zip(heard, heard[1:]))
    events = [event for event in heard if not event.detail]  # each step's start (details: within a step)
    assert [e.step for e in events] == list(range(1, len(events) + 1))
    assert all(e.total == len(events) for e in events)
    assert events[0].work_done == 0.0 and all(a.work_done < b.work_done for a, b in zip(events, events[1:]))
    assert events[-1].work_done < 1.0
    subjects = {e.subject for e in events}
    assert {"backbone/inner_conv", "head_block/head_separable", "site"} <= subjects
    share = {(e.subject, e.phase): b.work_done - e.work_done for e, b in zip(events, events[1:])}
    # the deepest layer's ascent is estimated dearer than the first layer's
    assert share[("up", "gradient ascent")] > share[("stem", "gradient ascent")]


def test_leftovers_of_killed_builds_are_removed_but_a_live_build_is_left_alone(tiny_model_file, tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    for leftover in (f".site.cnnviz-staging-{dead_pid}", f".site.cnnviz-old-{dead_pid}",
                     f".site.cnnviz-staging-{os.getppid()}", f".other.cnnviz-staging-{dead_pid}"):
        (tmp_path / leftover).mkdir()
        (tmp_path / leftover / "index.html").write_text("half built")
    (tmp_path / "site").mkdir()  # the swap finished, so the old copy is garbage
    assert main(["build", tiny_model_file, "--out", str(tmp_path / "site"), "--quiet", "--ascent-steps", "1"]) == 0
    left = sorted(p.name for p in tmp_path.iterdir() if "cnnviz-" in p.name)
    # the dead build's folders are gone; a running process's and another site's are kept
    assert left == sorted([f".site.cnnviz-staging-{os.getppid()}", f".other.cnnviz-staging-{dead_pid}"])


def test_a_build_killed_between_its_two_renames_gets_the_old_site_back(tmp_path):
    from cnnviz_report.staging import remove_leftovers

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    old = tmp_path / f".site.cnnviz-old-{int(finished.stdout)}"
    old.mkdir()
    (old / "index.html").write_text("the previous site")
    assert remove_leftovers(str(tmp_path / "site")) == []
    assert (tmp_path / "site" / "index.html").read_text() == "the previous site" and not old.exists()


def test_sigterm_leaves_no_staging_folder_and_keeps_the_old_site(tiny_model_file, tmp_path):
    import signal
    import time

    out = tmp_path / "site"
    assert main(["build", tiny_model_file, "--out", str(out), "--quiet", "--ascent-steps", "1", "--title", "old"]) == 0
    process = subprocess.Popen(
        [sys.executable, "-m", "cnnviz_report", "build", tiny_model_file, "--out", str(out), "--ascent-steps", "100000",
         "--title", "new"], cwd=Path(__file__).parent.parent, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:  # wait until it is deep in the ascent
        if "gradient ascent" in line:
            break
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert "old" in (out / "index.html").read_text()
    assert [p.name for p in tmp_path.iterdir() if "cnnviz-" in p.name] == []


def test_ascent_options_through_the_cli(tiny_model_file, tmp_path, capsys):
    out = tmp_path / "site"
    assert main(["build", tiny_model_file, "--out", str(out), "--ascent", "robust", "--select", "top",
                 "--max-filters", "2", "--ascent-steps", "3", "--cache-dir", str(tmp_path / "c")]) == 0
    summary = capsys.readouterr().out
    assert "mosaic cache: 0 reused, 2 computed" in summary and "gradient ascent" in summary
    page = (out / "layers/001-conv_a.html").read_text()
    assert "robust mode" in page and "most activated" in page
    assert len(list((tmp_path / "c" / "ascent").glob("*.npz"))) == 2
    assert main(["build", tiny_model_file, "--out", str(out), "--no-cache", "--ascent-steps", "2"]) == 0
    assert "mosaic cache: 0 reused, 2 computed" in capsys.readouterr().out
    with pytest.raises(SystemExit) as rejected:  # argparse refuses an unknown mode before any work
        main(["build", tiny_model_file, "--out", str(out), "--ascent", "slow"])
    assert rejected.value.code == 2


def test_folders_that_must_never_be_replaced(tiny_model_file, photo_path, tmp_path, capsys, monkeypatch):
    from PIL import Image

    site = tmp_path / "site"  # a site this tool made...
    assert main(["build", tiny_model_file, "--out", str(site), "--quiet", "--ascent-steps", "1"]) == 0
    Image.open(photo_path).save(site / "mine.jpg")  # ...that the user then put an input into
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    cases = [
        (["--out", str(site), "--images", str(site / "mine.jpg")], "holds the input"),
        (["--out", str(tmp_path / "repo")], "is under version control (.git)"),
        (["--out", "."], "refusing to write a site over this folder"),
        (["--out", ".."], "refusing to write a site over this folder"),
    ]
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    for extra, reason in cases:
        capsys.readouterr()
        assert main(["build", tiny_model_file, "--quiet"] + extra) == 2, extra
        err = capsys.readouterr().err.strip()
        assert err.startswith("cnnviz_report: error: ") and reason in err and len(err.splitlines()) == 1, err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing touched


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_nan_and_inf_render_as_marked_tiles_without_warnings(keras, photo_path, tmp_path):
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 3, name="c")(inputs))
    kernel = np.random.default_rng(0).normal(0, 0.3, (3, 3, 3, 3)).astype("float32")
    kernel[1, 1, 0, 0] = np.nan  # filter 0: NaN weight -> NaN feature map
    kernel[0, 0, 2, 2] = np.inf  # filter 2: Inf weight -> Inf/NaN feature map
    model.set_weights([kernel, np.zeros(3, "float32")])
    path = tmp_path / "nan.keras"
    model.save(path)
    out = tmp_path / "site"
    assert main(["build", str(path), "--images", photo_path, "--out", str(out), "--quiet", "--ascent-steps", "2"]) == 0
    from PIL import Image

    magenta = np.array([255, 0, 255])
    for picture in ("filters.png", "fmaps-01-grace_hopper.png", "mean-01-grace_hopper.png"):
        pixels = np.asarray(Image.open(out / "layers/001-c" / picture).convert("RGB"))
        assert (pixels == magenta).all(axis=-1).any(), picture
    page = (out / "layers/001-c.html").read_text()
    assert "2 filter(s) hold NaN or Inf weights" in page and "channel(s) hold NaN or Inf values" in page


@pytest.mark.parametrize("kind", ["mixed_float16", "bfloat16", "free_size"])
def test_half_precision_and_free_size_models_render(keras, photo_path, tmp_path, kind):
    shape = (None, None, 3) if kind == "free_size" else (16, 16, 3)
    try:
        if kind == "mixed_float16":
            keras.mixed_precision.set_global_policy("mixed_float16")
        inputs = keras.Input(shape)
        layer = keras.layers.Conv2D(4, 3, activation="relu", name="c",
                                    dtype="bfloat16" if kind == "bfloat16" else None)
        model = keras.Model(inputs, layer(inputs))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    path = tmp_path / f"{kind}.keras"
    model.save(path)
    out = tmp_path / "site"
    assert main(["build", str(path), "--images", photo_path, "--out", str(out), "--quiet", "--ascent-steps", "3"]) == 0
    assert assert_valid_links(out) > 5
    from PIL import Image

    mosaic = np.asarray(Image.open(out / "layers/001-c/mosaic.png").convert("L"), dtype=float)
    assert mosaic.std() > 5  # pictures, not a flat or NaN tile


@pytest.mark.parametrize("channels", [2, 4, 6])
def test_models_with_other_than_three_input_channels(keras, photo_path, tmp_path, capsys, channels):
    """RGBA models read images with their alpha; any count renders its filters and mosaics."""
    inputs = keras.Input((12, 10, channels))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 3, activation="relu", name="conv")(inputs))
    path = tmp_path / f"c{channels}.keras"
    model.save(path)
    out = tmp_path / "site"
    assert main(["build", str(path), "--out", str(out), "--quiet", "--ascent-steps", "2"]) == 0
    page = (out / "layers/001-conv.html").read_text()
    assert f"The model reads {channels} channels" in page
    from PIL import Image

    mosaic = np.asarray(Image.open(out / "layers/001-conv/mosaic.png"))
    assert mosaic.shape[1] > mosaic.shape[0] * 2  # each tile is a strip of panels, three tiles in a row
    with_images = ["build", str(path), "--images", photo_path, "--out", str(tmp_path / "with-images"), "--quiet",
                   "--ascent-steps", "2"]
    capsys.readouterr()
    if channels == 4:
        assert main(with_images) == 0
        assert (tmp_path / "with-images/layers/001-conv/fmaps-01-grace_hopper.png").is_file()
    else:
        assert main(with_images) == 2 and not (tmp_path / "with-images").exists()
        assert capsys.readouterr().err == (
            f"cnnviz_report: error: --images: the model takes {channels}-channel input and image files give 1, 3 "
            "or 4 (RGBA); build without --images to draw its filters and gradient-ascent images\n")


def test_input_size_is_refused_by_a_model_of_fixed_size_and_taken_for_a_free_side(keras, tiny_model_file,
                                                                                  tmp_path, capsys):
    """--input-size used to be ignored without a word on a fixed-size model: refused, saying the
    model's size; a model with one free side takes it for that side and refuses a fixed side
    that does not match."""
    fast = ["--out", str(tmp_path / "site"), "--ascent-steps", "0", "--max-filters", "2", "--quiet"]
    assert main(["build", tiny_model_file, "--input-size", "64", *fast]) == 2
    error = capsys.readouterr().err
    assert error == (f"cnnviz_report: error: {tiny_model_file}: --input-size 64x64: the model's input size is fixed "
                     "at 8x8 (--input-size is for models that take any size; build without it)\n")
    assert not (tmp_path / "site").exists()
    assert main(["build", tiny_model_file, "--input-size", "8", *fast]) == 0  # its own size is no change

    inputs = keras.Input((None, 12, 3))  # any height, 12 wide
    tall = tmp_path / "tall.keras"
    keras.Model(inputs, keras.layers.Conv2D(2, 3, name="c")(inputs)).save(tall)
    assert main(["build", str(tall), "--input-size", "40", *fast]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"error: {tall}: --input-size 40x40: the model's input is anyx12" in error
    assert "only its height is free, its width is fixed; try --input-size 40x12" in error, error
    assert main(["build", str(tall), "--input-size", "40x12", *fast]) == 0
    assert "40 × 12 pixels; the model takes any size" in (tmp_path / "site" / "index.html").read_text()


# TensorFlow's C++ log prefix (severity, month and day: "E0000 00:00:17..."), and what it says
TF_NOISE = re.compile(r"^[IWEF]\d{4} |cuInit|oneDNN|absl|cuda_|cudart|rebuild TensorFlow")


def test_the_frameworks_noise_stays_off_the_console_and_debug_shows_it(tmp_path):
    """A build's stderr holds its progress and nothing of TensorFlow's start-up and device lines
    (on a machine without a GPU: "failed call to cuInit: ... UNKNOWN ERROR (303)"); with --debug
    everything shows (which also proves the pattern matches TensorFlow's real lines)."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    runs = {}
    for debug in (False, True):
        result = subprocess.run(
            [sys.executable, "-m", "cnnviz_report", "build", "--out", str(tmp_path / f"site-{debug}"),
             "--ascent-steps", "1", "--max-filters", "2", *(["--debug"] if debug else [])],
            capture_output=True, text=True, env=env, cwd=Path(__file__).parent.parent, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        runs[debug] = [line for line in result.stderr.splitlines() if TF_NOISE.search(line)]
    assert runs[False] == []
    assert runs[True], "--debug should show TensorFlow's own lines"
