"""One layer's unexpected error names the layer; with --keep-going the others are still built."""

from __future__ import annotations

from cnnviz_report import build
from cnnviz_report.cli import main


def _break_one_layer(monkeypatch, name="conv_b"):
    real = build.draw_mosaic

    def draw(entry, info, *args):
        if info.name == name:
            raise ValueError("planted: tuple index out of range")
        return real(entry, info, *args)

    monkeypatch.setattr(build, "draw_mosaic", draw)


def test_a_failing_layer_stops_the_build_naming_it(tiny_model_file, photo_path, tmp_path, capsys, monkeypatch):
    out = tmp_path / "site"
    assert main(["build", str(tiny_model_file), "--images", photo_path, "--out", str(out), "--quiet",
                 "--ascent-steps", "1"]) == 0
    before = sorted(p.name for p in out.rglob("*"))
    _break_one_layer(monkeypatch)
    assert main(["build", str(tiny_model_file), "--images", photo_path, "--out", str(out), "--quiet",
                 "--ascent-steps", "1"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("cnnviz_report: error: conv_b: Conv2D layer failed while drawing its gradient ascent: "
                            "ValueError: planted: tuple index out of range") and "\n" not in error
    assert sorted(p.name for p in out.rglob("*")) == before  # the previous site is untouched


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
