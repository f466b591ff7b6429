"""Odd and hostile image files: one-line errors by name, every mode converted, bombs refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnviz_report import paths
from cnnviz_report.cli import main
from cnnviz_report.errors import ImageLoadError
from cnnviz_report.loading import load_image


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _handled(path, figures, size=(8, 8), channels=3):
    """Load ``path``; count it, and count it as handled if it loads or fails in one named line."""
    figures["image files tried"] += 1
    try:
        loaded = load_image(str(path), 0, size, channels)
    except ImageLoadError as error:
        figures["handled cleanly"] += str(error).startswith(f"{path}: ") and "\n" not in str(error)
        raise
    figures["handled cleanly"] += loaded.pixels.shape == (*size, channels) and bool(np.isfinite(loaded.pixels).all())
    return loaded


def test_bad_files_fail_in_one_line_naming_the_file(tmp_path, figures):
    photo = _png_bytes(Image.new("RGB", (40, 30), (10, 200, 30)))
    cases = {
        "empty.png": (b"", "the file is empty"),
        "random.jpg": (np.random.default_rng(0).bytes(2048), "not an image in an allowed format"),
        "script.png": (b"#!/bin/sh\necho not a png\n", "not an image in an allowed format"),
        "truncated.png": (photo[: len(photo) // 2], "cannot read image"),
        "vector.png": (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "not an image in an allowed format"),
    }
    for name, (data, reason) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ImageLoadError) as caught:
            _handled(path, figures)
        message = str(caught.value)
        assert message.startswith(f"{path}: ") and reason in message and "\n" not in message, (name, message)


def test_format_is_decided_by_content_not_by_extension(tmp_path):
    disguised = tmp_path / "photo.txt"  # a real PNG with the wrong extension is still a PNG
    disguised.write_bytes(_png_bytes(Image.new("RGB", (20, 10), (250, 0, 0))))
    assert load_image(str(disguised), 0, (5, 10), 3).pixels[0, 0].tolist() == [250.0, 0.0, 0.0]
    icon = tmp_path / "icon.png"  # an allowed extension on a format outside the allow-list
    Image.new("RGB", (16, 16)).save(icon, format="ICO")
    with pytest.raises(ImageLoadError, match="not an image in an allowed format"):
        load_image(str(icon), 0, (8, 8), 3)


def test_decompression_bombs_are_refused_before_decoding(tmp_path, monkeypatch, figures):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a bomb, scaled down to test quickly
    warning_size, error_size = tmp_path / "warns.png", tmp_path / "errors.png"
    Image.new("L", (40, 30)).save(warning_size)  # 1,200 px: over the limit (Pillow warns)
    Image.new("L", (80, 40)).save(error_size)  # 3,200 px: over twice the limit (Pillow refuses)
    for path in (warning_size, error_size):
        with pytest.raises(ImageLoadError, match="refusing a decompression bomb"):
            _handled(path, figures)


def test_every_mode_and_the_first_frame_of_an_animation(tmp_path, figures):
    cases = {
        "cmyk.jpg": Image.new("CMYK", (12, 10), (0, 255, 255, 0)),
        "la.png": Image.new("LA", (12, 10), (90, 255)),
        "float.tif": Image.fromarray(np.linspace(-5, 5, 120, dtype=np.float32).reshape(10, 12)),
        "p_transparent.png": Image.new("P", (12, 10), 0),
        "rgba.png": Image.new("RGBA", (12, 10), (255, 0, 0, 0)),
        "bilevel.png": Image.new("1", (12, 10), 1),
        "deep.png": Image.fromarray(np.arange(120, dtype=np.uint16).reshape(10, 12) * 500),  # I;16
    }
    cases["p_transparent.png"].info["transparency"] = 0
    for name, image in cases.items():
        kwargs = {"transparency": 0} if name == "p_transparent.png" else {}
        image.save(tmp_path / name, **kwargs)
        loaded = _handled(tmp_path / name, figures, (4, 6))
        assert loaded.pixels.shape == (4, 6, 3) and np.isfinite(loaded.pixels).all(), name
    assert np.all(load_image(str(tmp_path / "p_transparent.png"), 0, (4, 6), 3).pixels == 255)  # onto white
    assert np.all(load_image(str(tmp_path / "rgba.png"), 0, (4, 6), 3).pixels == 255)  # fully transparent red
    deep = load_image(str(tmp_path / "deep.png"), 0, (10, 12), 1).pixels  # 16 bits scaled, not clipped
    assert deep.min() == 0 and deep.max() == 255 and len(np.unique(deep)) > 100
    frames = [Image.new("RGB", (10, 10), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert load_image(str(tmp_path / "anim.gif"), 0, (4, 4), 3).pixels[0, 0].tolist() == [255.0, 0.0, 0.0]


def test_grey_and_rgba_models_get_one_and_four_channels(tmp_path, figures):
    """A 4-channel model reads RGBA: alpha is passed through, and opaque for files without one."""
    Image.new("RGBA", (12, 10), (200, 100, 50, 70)).save(tmp_path / "half.png")
    Image.new("RGB", (12, 10), (200, 100, 50)).save(tmp_path / "solid.jpg", quality=100)
    half = _handled(tmp_path / "half.png", figures, (4, 6), 4).pixels  # resized premultiplied: +-2
    assert np.allclose(half[0, 0], [200, 100, 50, 70], atol=3)
    assert _handled(tmp_path / "solid.jpg", figures, (4, 6), 4).pixels[..., 3].min() == 255
    grey = _handled(tmp_path / "solid.jpg", figures, (4, 6), 1).pixels
    assert grey.shape == (4, 6, 1) and abs(float(grey[0, 0, 0]) - (0.299 * 200 + 0.587 * 100 + 0.114 * 50)) < 2


def test_keep_going_lists_bad_files_in_the_report_and_exits_2(tiny_model_file, photo_path, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.open(photo_path).save(folder / "a.jpg")
    (folder / "b.png").write_bytes(b"")
    (folder / "c.txt").write_text("<script>alert(1)</script>")
    out = tmp_path / "site"
    assert main(["build", tiny_model_file, "--images", str(folder), "--out", str(out), "--quiet"]) == 2
    assert not out.exists()  # without --keep-going: stop at the first bad file
    capsys.readouterr()
    assert main(["build", tiny_model_file, "--images", str(folder), "--out", str(out), "--quiet", "--keep-going",
                 "--ascent-steps", "1"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"cnnviz_report: skipped: {folder / 'b.png'}: the file is empty",
                   f"cnnviz_report: skipped: {folder / 'c.txt'}: not an image in an allowed format "
                   "(JPEG, PNG, BMP, GIF, WEBP, TIFF)"]
    index = (out / "index.html").read_text()
    assert "Images that could not be read" in index and "c.txt" in index and "<script>" not in index
    assert (out / "images/01-a.html").exists()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=512), header=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a",
                                                             b"BM", b"RIFF\x00\x00\x00\x00WEBP", b"II*\x00"]))
def test_fuzzed_files_either_load_or_fail_with_an_image_error(tmp_path, data, header, figures):
    path = tmp_path / "fuzz.bin"
    path.write_bytes(header + data)
    try:
        loaded = _handled(path, figures)
    except ImageLoadError as error:
        assert str(error).startswith(f"{path}: ") and "\n" not in str(error)
    else:
        assert loaded.pixels.shape == (8, 8, 3)


@settings(max_examples=300, deadline=None)
@given(index=st.integers(0, 999), name=st.text(max_size=300))
def test_fuzzed_names_give_safe_distinct_file_names(index, name):
    slug = paths.layer_slug(index, name)
    assert slug.startswith(f"{index:03d}-") and len(slug) <= 4 + paths.MAX_SLUG_CHARS
    assert all(ch.isascii() and (ch.isalnum() or ch in "-_.") for ch in slug)
    assert ".." not in slug and "/" not in slug and not slug.endswith(".")
    assert paths.relative_url("index.html", paths.layer_page(slug)) == f"layers/{slug}.html"
