"""One layer's unexpected error names the layer; with --keep-going the others are still built."""

from __future__ import annotations

import pytest

from cnnviz_report import build
from cnnviz_report.cli import main
from conftest import assert_valid_links


def _break_one_layer(monkeypatch, name="conv_b"):
    real = build.draw_mosaic

    def draw(entry, info, *args):
        if info.name == name:
            raise ValueError("planted: tuple index out of range")
        return real(entry, info, *args)

    monkeypatch.setattr(build, "draw_mosaic", draw)


@pytest.mark.parametrize("stream", [False, True], ids=["one-shot", "streamed"])
def test_a_failing_layer_stops_the_build_naming_it(tiny_model_file, photo_path, tmp_path, capsys, monkeypatch, stream):
    out = tmp_path / "site"
    assert main(["build", str(tiny_model_file), "--images", photo_path, "--out", str(out), "--quiet",
                 "--ascent-steps", "1"]) == 0
    before = sorted(p.name for p in out.rglob("*"))
    _break_one_layer(monkeypatch)
    assert main(["build", str(tiny_model_file), "--images", photo_path, "--out", str(out), "--quiet",
                 "--ascent-steps", "1", "--title", "new"] + ([] if stream else ["--no-stream"])) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("cnnviz_report: error: conv_b: Conv2D layer failed while drawing its gradient ascent: "
                            "ValueError: planted: tuple index out of range") and "\n" not in error
    if not stream:
        assert sorted(p.name for p in out.rglob("*")) == before  # the previous site is untouched
        return
    # the first look was published before the ascent: the new site says what stopped it and what is missing
    index = (out / "index.html").read_text()
    assert "new" in index and "This build stopped before it ended" in index and "planted" in index
    page = next((out / "layers").glob("*conv_b.html")).read_text()
    assert "not drawn: the build stopped (LayerError" in page
    assert assert_valid_links(out) > 10 and not any(".cnnviz-" in p.name for p in tmp_path.rglob("*"))


def test_keep_going_shows_the_failure_and_exits_2(tiny_model_file, photo_path, tmp_path, capsys, monkeypatch):
    _break_one_layer(monkeypatch)
    out = tmp_path / "site"
    assert main(["build", str(tiny_model_file), "--images", photo_path, "--out", str(out), "--quiet",
                 "--ascent-steps", "1", "--keep-going"]) == 2
    assert "layer not drawn: conv_b (Conv2D): gradient ascent: ValueError" in capsys.readouterr().err
    index = (out / "index.html").read_text()
    assert "Layers that could not be drawn" in index and "conv_b" in index
    page = next((out / "layers").glob("*conv_b.html")).read_text()
    assert "This layer could not be drawn" in page and "planted" in page
    assert "could not be drawn" in (out / "summary.md").read_text()
    assert (next((out / "layers").glob("*conv_a")) / "mosaic.png").is_file()  # the other layer is whole
