"""What a review needs: notes, summary.md, health.csv, manifest.json, the single-file report,
and builds that are byte-for-byte reproducible."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re

import pytest

from cnnviz_report import paths
from cnnviz_report.cli import main
from cnnviz_report.notes import split_sections, to_html

from conftest import assert_valid_links


def _build(model, out, *extra):
    return main(["build", str(model), "--out", str(out), "--quiet", "--ascent-steps", "3", *extra])


def test_notes_go_to_the_index_and_to_their_layer_with_raw_html_escaped(tiny_model_file, tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("# Verdict\nShip it. <script>alert(1)</script> [x](javascript:alert(2)) "
                     "[docs](https://keras.io)\n\n## conv_b\nFilter 1 looks *odd*.\n\n## Not a layer\nStays.\n",
                     encoding="utf-8")
    out = tmp_path / "site"
    assert _build(tiny_model_file, out, "--notes", str(notes)) == 0
    index = (out / "index.html").read_text()
    assert "Ship it. &lt;script&gt;alert(1)&lt;/script&gt;" in index and "<script>alert" not in index
    assert 'href="#unsafe-link-removed"' in index and 'href="https://keras.io"' in index
    assert "Not a layer" in index and "looks <em>odd</em>" not in index
    assert "Filter 1 looks <em>odd</em>" in (out / "layers/002-conv_b.html").read_text()
    assert "Reviewer's notes" not in (out / "layers/001-conv_a.html").read_text()


def test_notes_split_ignores_headings_inside_code_fences():
    index, sections = split_sections("intro\n## a\none\n```\n## b\n```\n## b\ntwo", {"a", "b"})
    assert index == "intro" and sections == {"a": "one\n```\n## b\n```", "b": "two"}
    assert "&lt;div" in to_html("<div onclick='x'>hi</div>") and "<div" not in to_html("<div>hi</div>")


def test_summary_md_has_the_conv_table_with_links_that_resolve(keras, photo_path, tmp_path):
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="stem|a_b*c")(inputs)
    x = keras.layers.Conv2D(3, 3, activation="relu", name="block<2>")(x)
    model_path = tmp_path / "m.keras"
    keras.Model(inputs, x).save(model_path)
    out = tmp_path / "site"
    assert _build(model_path, out, "--images", photo_path) == 0
    summary = (out / paths.SUMMARY_FILE).read_text()
    rows = [line for line in summary.splitlines() if line.startswith("| ") and "](layers/" in line]
    assert len(rows) == 2
    assert r"[stem\|a\_b\*c](layers/001-stem-a_b-c.html)" in rows[0] and "| 3 |" in rows[0]  # receptive field
    assert "[block&lt;2&gt;](layers/002-block-2.html)" in rows[1] and "| 5 |" in rows[1]
    for target in re.findall(r"\]\(([^)]+)\)", summary):
        assert (out / target).is_file(), target
    assert "**Parameters:** 223 (223 trainable, 0 non-trainable)" in summary
    table = summary.split("\n| # |", 1)[1]
    assert all(line.count("|") - line.count(r"\|") == 13 for line in table.splitlines()[:4] if line.startswith("|"))


def test_manifest_records_versions_hashes_settings_and_phase_times(tiny_model_file, photo_path, tmp_path):
    out = tmp_path / "site"
    assert _build(tiny_model_file, out, "--images", photo_path, "--seed", "5") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["versions"]) >= {"cnnviz_report", "python", "tensorflow", "keras", "numpy", "pillow"}
    assert manifest["model"]["file_sha256"] == hashlib.sha256(open(tiny_model_file, "rb").read()).hexdigest()
    assert manifest["images"][0]["sha256"] == hashlib.sha256(open(photo_path, "rb").read()).hexdigest()
    assert manifest["settings"]["seed"] == 5 and manifest["settings"]["ascent_steps"] == 3
    assert {"load", "filters", "feature maps", "gradient ascent", "pages"} <= set(manifest["seconds_per_phase"])
    assert manifest["layers"][0]["health"].keys() >= {"dead", "duplicates", "nonfinite"}


def test_a_folder_with_someone_elses_manifest_is_refused(tiny_model_file, tmp_path, capsys):
    web_app = tmp_path / "app"
    web_app.mkdir()
    (web_app / "manifest.json").write_text('{"name": "My PWA", "start_url": "/"}')
    assert _build(tiny_model_file, web_app) == 2
    assert "was not made by cnnviz_report" in capsys.readouterr().err
    assert (web_app / "manifest.json").read_text() == '{"name": "My PWA", "start_url": "/"}'


def test_two_builds_of_the_same_inputs_are_identical(tiny_model_file, photo_path, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    digests = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert _build(tiny_model_file, out, "--images", photo_path, "--no-cache", "--seed", "3") == 0
        files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")  # it holds timings
        digests.append({p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files})
    assert digests[0] == digests[1] and len(digests[0]) > 30
    assert "Built 2023-11-14" in (tmp_path / "a/index.html").read_text()


def test_single_file_report_is_self_contained_and_never_overwrites_a_foreign_file(tiny_model_file, photo_path,
                                                                                 tmp_path, capsys):
    single = tmp_path / "report.html"
    single.write_text("<html>my own report</html>")
    assert _build(tiny_model_file, tmp_path / "site", "--images", photo_path, "--single-file", str(single)) == 2
    assert single.read_text() == "<html>my own report</html>" and not (tmp_path / "site").exists()
    assert "was not written by cnnviz_report" in capsys.readouterr().err
    single.unlink()
    assert main(["build", tiny_model_file, "--out", str(tmp_path / "site"), "--ascent-steps", "3", "--images",
                 photo_path, photo_path, "--single-file", str(single), "--single-file-images", "1"]) == 0
    assert re.search(r"Single-file report: .*report\.html \(\d+ KB\)", capsys.readouterr().out)
    html = single.read_text()
    sources = re.findall(r'<img src="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/") for s in sources)
    assert not re.search(r'(href|src)="(?!#|data:)', html)  # nothing outside the file
    assert html.count("Feature maps for grace_hopper.jpg") == 2  # one image of two, for each of 2 layers
    assert _build(tiny_model_file, tmp_path / "site", "--single-file", str(single)) == 0  # its own: replaced


def test_health_flags_duplicates_nan_kernels_and_dead_filters(keras, photo_path, tmp_path):
    import numpy as np

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    model = keras.Model(inputs, x)
    kernel, bias = model.get_weights()
    rng = np.random.default_rng(0)
    kernel = rng.normal(0, 1, kernel.shape).astype("float32")
    kernel[..., 5] = kernel[..., 2] * 1.5  # a duplicate of filter 2 (cosine 1)
    kernel[..., 6] = -np.abs(kernel[..., 6]) * 0 - 1.0  # all negative weights on positive pixels: dead
    bias[:] = 0.0
    kernel[0, 0, 0, 7] = np.nan
    model.set_weights([kernel, bias])
    path = tmp_path / "h.keras"
    model.save(path)
    out = tmp_path / "site"
    assert _build(path, out, "--images", photo_path) == 0
    rows = {int(r["filter"]): r for r in csv.DictReader(io.StringIO((out / "health.csv").read_text()))}
    assert len(rows) == 8
    assert rows[5]["duplicate_of"] == "2" and float(rows[5]["cosine"]) > 0.999
    assert rows[6]["dead_on_images"] == "1" and rows[7]["nonfinite_kernel"] == "1"
    assert [f for f, r in rows.items() if r["dead_on_images"] == "1"] == [6]
    # every ascent picture is measured for its quality as well as its activation
    assert all(r["ascent_transformed"] and r["ascent_high_frequency"] for r in rows.values())
    assert 0 <= float(rows[0]["ascent_high_frequency"]) <= 1
    page = (out / "layers/001-conv.html").read_text()
    assert "1 duplicate<" in page and "1 NaN/Inf kernel<" in page and "1 dead<" in page
    assert 'id="f5"' in page and "repeats filter 2" in page
    assert "that reads the same inputs" in page and "none when the depth multiplier is 1" in page  # the rule
    assert assert_valid_links(out) > 10


def test_the_pages_workflow_uses_the_official_actions_and_real_options():
    from pathlib import Path

    from cnnviz_report.cli import _parser

    workflow = (Path(__file__).parent.parent / "examples/github-pages.yml").read_text()
    for action in ("actions/configure-pages@", "actions/upload-pages-artifact@", "actions/deploy-pages@",
                   "actions/cache@"):
        assert action in workflow
    assert "pages: write" in workflow and "id-token: write" in workflow and "~/.keras/models" in workflow
    build_help = _parser()._subparsers._group_actions[0].choices["build"].format_help()
    for option in set(re.findall(r"\s(--[a-z-]+)", workflow.split("python -m cnnviz_report build", 1)[1])):
        assert option in build_help, option


def test_bad_notes_fail_in_one_line_and_leave_nothing(tiny_model_file, tmp_path, capsys):
    (tmp_path / "latin1.md").write_bytes("caf\xe9 notes".encode("latin-1"))
    cases = {str(tmp_path / "missing.md"): "--notes " + str(tmp_path / "missing.md") + ": no such file",
             str(tmp_path / "latin1.md"): str(tmp_path / "latin1.md") + ": notes are not UTF-8 text (byte 3)"}
    for notes, message in cases.items():
        assert _build(tiny_model_file, tmp_path / "site", "--notes", notes) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
        assert not (tmp_path / "site").exists() and not any(".cnnviz-" in p.name for p in tmp_path.iterdir())
