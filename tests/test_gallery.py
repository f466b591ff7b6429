"""The gallery command: one report per model under one index, with build's safety and determinism."""

from __future__ import annotations

import json

import pytest

from conftest import assert_valid_links, site_files

from cnnviz_report.cli import main

FAST = ["--ascent-steps", "2", "--max-filters", "4", "--quiet"]


def test_a_gallery_has_a_report_per_model_and_a_card_linking_into_each(tiny_model_file, photo_path, tmp_path):
    out = tmp_path / "gallery"
    assert main(["gallery", "demo", tiny_model_file, "--images", photo_path, "--out", str(out), *FAST]) == 0
    assert sorted(p.name for p in out.iterdir()) == [".nojekyll", "01-demo", "02-tiny", "index.html", "manifest.json",
                                                     "static", "summary.md"]
    for folder in ("01-demo", "02-tiny"):
        assert (out / folder / "index.html").is_file() and (out / folder / "layers").is_dir()
    index = (out / "index.html").read_text()
    assert index.count('class="model-card"') == 2
    assert 'href="01-demo/index.html"' in index and 'href="02-tiny/index.html"' in index
    assert 'href="01-demo/layers/008-conv4.html"' in index  # a mosaic tile links to its layer's page
    assert "62,060" in index and "of 176 filters dead on the 1 image(s)" in index  # the demo's size and health
    assert assert_valid_links(out) > 100  # the index's and every report's links resolve
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tool"] == "cnnviz_report" and manifest["kind"] == "gallery"
    assert [m["folder"] for m in manifest["models"]] == ["01-demo", "02-tiny"]
    summary = (out / "summary.md").read_text()
    assert "[cnnviz demo CNN](01-demo/index.html)" in summary and "(02-tiny/summary.md)" in summary

    again = tmp_path / "again"
    assert main(["gallery", "demo", tiny_model_file, "--images", photo_path, "--out", str(again), *FAST]) == 0
    assert site_files(out) == site_files(again)  # the same inputs make the same gallery


def test_a_model_that_fails_leaves_the_previous_gallery_untouched(tiny_model_file, photo_path, tmp_path, capsys):
    out = tmp_path / "gallery"
    assert main(["gallery", "demo", "--images", photo_path, "--out", str(out), *FAST]) == 0
    before = site_files(out)
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a keras file")
    assert main(["gallery", "demo", str(broken), "--images", photo_path, "--out", str(out), *FAST]) != 0
    error = capsys.readouterr().err.strip()
    assert error.startswith("cnnviz_report: error:") and "broken.keras" in error and "\n" not in error
    assert site_files(out) == before
    assert not [p for p in tmp_path.iterdir() if "cnnviz-staging" in p.name]


def test_a_gallery_never_replaces_a_folder_it_did_not_make(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["gallery", "demo", "--out", str(out), *FAST]) != 0
    assert "not made by cnnviz_report" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "keep me"


def test_every_model_argument_is_checked_before_any_model_is_built(keras, tiny_model_file, tmp_path, capsys,
                                                                  monkeypatch):
    """A missing, unsafe or unknown last model stops the gallery before the first is built (it
    used to build all of the first model, then fail)."""
    import cnnviz_report.gallery as gallery

    inputs = keras.Input((8, 8, 3))
    unsafe = tmp_path / "lambda.keras"
    keras.Model(inputs, keras.layers.Conv2D(2, 3)(keras.layers.Lambda(lambda x: x * 2, name="doubler")(inputs))) \
        .save(unsafe)
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    monkeypatch.setattr(gallery, "build_site", lambda *args, **kwargs: pytest.fail("built a model"))
    cases = {str(tmp_path / "missing.keras"): "no such model file",
             str(unsafe): "layer 'doubler': Lambda layers hold Python code",
             str(empty): "the file is empty",
             "resnet51": "not a model file and not a keras.applications name"}
    for model, reason in cases.items():
        assert main(["gallery", "demo", tiny_model_file, model, "--out", str(tmp_path / "gallery"), *FAST]) == 2
        error = capsys.readouterr().err
        assert error.startswith(f"cnnviz_report: error: {model}: {reason}") and error.count("\n") == 1, error
        assert not (tmp_path / "gallery").exists()


def test_input_size_in_a_gallery_applies_to_the_models_that_take_any_size(tiny_model_file, tmp_path):
    """No error for the fixed-size models of a gallery: they are built at their own size, their
    reports say so, and the gallery's index names them."""
    from pathlib import Path

    free = Path(__file__).parent / "fixtures" / "legacy_free_size.h5"
    out = tmp_path / "gallery"
    assert main(["gallery", str(free), tiny_model_file, "--input-size", "48x40", "--out", str(out), *FAST]) == 0
    index = (out / "index.html").read_text()
    assert "--input-size 48 × 40 applies to the models that take any size; these have a fixed input size and " \
           "were built at their own:\ntiny.keras (8 × 8)." in index
    assert "48 × 40 pixels; the model takes any size" in (out / "01-legacy_free_size" / "index.html").read_text()
    tiny = (out / "02-tiny" / "index.html").read_text()
    assert '<th scope="row">Input size</th><td>the model&#39;s own</td>' in tiny
