"""`diff A B`: two checkpoints compared filter by filter."""

from __future__ import annotations

import re

import numpy as np

from cnnviz_report.cli import main

from conftest import assert_valid_links, make_chain_model, make_tiny_model


def _diff(a, b, out, *extra):
    return main(["diff", str(a), str(b), "--out", str(out), "--quiet", "--ascent-steps", "3", *extra])


def _ranked(page: str, section: str = "most-changed") -> list[str]:
    """The filter numbers of a diff layer page's ranking table, in its order."""
    return re.findall(r'<tr[^>]*><td><a href="#f(\d+)">', page.split(f'id="{section}"')[1].split("</table>")[0])


def test_the_changed_filters_rank_first_and_a_zeroed_filter_is_newly_dead(keras, photo_path, tmp_path):
    parent = make_tiny_model(keras)
    parent.save(tmp_path / "a.keras")
    weights = parent.get_weights()  # conv_a kernel, bias, conv_b kernel, bias, head kernel, bias
    weights[0][..., 2] *= -3.0  # conv_a filter 2: big change
    weights[0][..., 0] += 0.05  # conv_a filter 0: small change
    weights[2][..., 1] = 0.0  # conv_b filter 1: zeroed, and its bias made negative -> dead
    weights[3][1] = -1.0
    parent.set_weights(weights)
    parent.save(tmp_path / "b.keras")
    out = tmp_path / "diff"
    assert _diff(tmp_path / "a.keras", tmp_path / "b.keras", out, "--images", photo_path) == 0
    conv_a = (out / "layers/001-conv_a.html").read_text()
    ranked = _ranked(conv_a)
    assert ranked == ["2", "0"]  # exactly the changed filters, most changed first
    conv_b = (out / "layers/002-conv_b.html").read_text()
    assert "became dead: 1" in conv_b and 'id="f1"' in conv_b
    summary = (out / "summary.md").read_text()
    assert re.search(r"\[conv\\_a\]\(layers/001-conv_a\.html\) \| [\d.]+ \(#\d\) \| [\d.]+ \(#1\) \| \[2 \(", summary)
    assert "| 1 | – |" in summary  # conv_b: filter 1 became dead, none came alive
    assert (out / "a/index.html").is_file() and (out / "b/index.html").is_file()
    assert assert_valid_links(out) > 50


def test_different_architectures_are_refused_naming_the_first_mismatch(keras, tmp_path, capsys):
    make_tiny_model(keras).save(tmp_path / "a.keras")
    inputs = keras.Input((8, 8, 3), name="pixels")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_a")(inputs)
    x = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="conv_b")(x)  # 5 filters, not 2
    keras.Model(inputs, keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling2D(name="gap")(x))).save(
        tmp_path / "b.keras")
    assert _diff(tmp_path / "a.keras", tmp_path / "b.keras", tmp_path / "diff") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not the architecture of" in err and "'conv_b'" in err
    assert not (tmp_path / "diff").exists()


def test_demo_against_a_copy_trained_a_few_more_steps(keras, photo_path, tmp_path, capsys):
    """The issue's done-criterion: top-ranked filters are the ones that changed most, the parent's
    pictures come from the cache, and every filter has an anchor a reviewer can link."""
    from cnnviz_report.loading import demo_model_path

    parent_path = demo_model_path()
    child = keras.saving.load_model(parent_path)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (32, 96, 96, 3)).astype("float32")
    labels = rng.integers(0, child.output_shape[-1], 32)
    child.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    child.fit(images, labels, epochs=1, batch_size=8, verbose=0)  # four steps
    child.save(tmp_path / "child.keras")

    assert main(["build", parent_path, "--out", str(tmp_path / "parent-site"), "--quiet", "--ascent-steps", "3",
                 "--images", photo_path]) == 0  # the parent's report, as CI would have built it
    out = tmp_path / "diff"
    assert main(["diff", parent_path, str(tmp_path / "child.keras"), "--out", str(out), "--ascent-steps", "3",
                 "--images", photo_path]) == 0
    printed = capsys.readouterr().out
    reused = int(re.search(r"mosaic cache: (\d+) reused", printed).group(1))
    assert reused >= 4  # all four of the parent's mosaics

    parent = keras.saving.load_model(parent_path)
    for layer_name, slug in (("conv1", "002-conv1"), ("conv4", "008-conv4")):
        before = parent.get_layer(layer_name).get_weights()[0]
        after = child.get_layer(layer_name).get_weights()[0]
        change = np.linalg.norm((after - before).reshape(-1, before.shape[-1]), axis=0) / \
            np.linalg.norm(before.reshape(-1, before.shape[-1]), axis=0)
        page = (out / "layers" / f"{slug}.html").read_text()
        ranked = _ranked(page)
        assert [int(f) for f in ranked[:3]] == list(np.argsort(-change, kind="stable")[:3]), layer_name
        for number in range(before.shape[-1]):
            assert f'id="f{number}"' in page
    assert assert_valid_links(out) > 100


def test_b_may_be_a_weights_file_for_as_architecture(keras, tmp_path):
    model = make_tiny_model(keras)
    model.save(tmp_path / "a.keras")
    weights = model.get_weights()
    weights[0][..., 3] += 1.0
    model.set_weights(weights)
    model.save_weights(tmp_path / "tuned.weights.h5")
    out = tmp_path / "diff"
    assert _diff(tmp_path / "a.keras", tmp_path / "tuned.weights.h5", out) == 0
    assert re.search(r'id="most-changed".*?href="#f3"', (out / "layers/001-conv_a.html").read_text(), re.S)


def _article(page: str, anchor: str) -> str:
    """What the anchor ``#<anchor>`` lands on: the element with that id, up to its end."""
    return page.split(f'id="{anchor}"')[1].split("</article>")[0]


def test_the_diff_shows_what_changed_and_ranks_the_layer_after_a_dead_filter(keras, photo_path, tmp_path):
    """Issue 12, item 7: A | B | B − A pictures with colour bars at a changed filter's anchor, and
    conv_c, whose kernels did not change but whose input did (conv_b's filter 1 died), has a
    response change and ranks above conv_a, where nothing changed."""
    model = make_chain_model(keras)
    model.save(tmp_path / "a.keras")
    kernel, bias = model.get_layer("conv_b").get_weights()
    kernel[..., 1], bias[1] = 0.0, -1.0  # filter 1 of conv_b: zeroed and dead
    model.get_layer("conv_b").set_weights([kernel, bias])
    model.save(tmp_path / "b.keras")
    out = tmp_path / "diff"
    assert _diff(tmp_path / "a.keras", tmp_path / "b.keras", out, "--images", photo_path) == 0

    conv_b = (out / "layers/002-conv_b.html").read_text()
    card = _article(conv_b, "f1")
    assert "became dead" in card and "a/layers/002-conv_b.html#f1" in card and "b/layers/002-conv_b.html#f1" in card
    for kind in ("kernel", "map"):  # the kernel, and the map on the image: A | B | B − A each
        for side in ("a", "b", "delta"):
            picture = f"layers/002-conv_b/f001-{kind}-{side}.png"
            assert picture.removeprefix("layers/") in card and (out / picture).is_file()
    assert card.count('class="colorbar"') == 4  # A | B share a bar, B − A has its own: kernel, then map
    signed = re.findall(r'<div class="ticks"><span>(-[\d.e+-]+)</span><span>0</span><span>([\d.e+-]+)</span>', card)
    assert len(signed) == 3  # the kernel pair, the kernel's B − A, the map's B − A: centred on zero, with numbers
    assert all(float(low) == -float(high) and float(high) > 0 for low, high in signed)
    assert _ranked(conv_b) == ["1"] and "<span class=\"mark\">changed</span>" in conv_b

    summary = (out / "summary.md").read_text()
    rows = re.findall(r"^\| \[(conv\\_\w)\]\([^)]*\) \| ([\d.e+-]+)(?: \(#\d\))? \|", summary, re.M)
    assert [name for name, _ in rows] == ["conv\\_b", "conv\\_c", "conv\\_a"]  # by response change
    response = {name: float(value) for name, value in rows}
    assert response["conv\\_c"] > 0.01 and response["conv\\_a"] == 0.0
    assert "| 0 | 0 | unchanged |" in summary  # conv_a: no rank where nothing changed

    index = (out / "index.html").read_text()
    assert re.findall(r'<td><a href="layers/\d+-(conv_\w)\.html">', index) == ["conv_b", "conv_c", "conv_a"]
    thumbnails = re.findall(r'<td class="diff-thumb"><a href="(layers/[^"]+)"><img src="([^"]+)"', index)
    assert ("layers/002-conv_b.html#f1", "layers/002-conv_b/f001-kernel-delta.png") in thumbnails
    assert ("layers/003-conv_c.html#image-1", "layers/003-conv_c/difference-01-grace_hopper.png") in thumbnails
    assert not any("001-conv_a" in page for page, _ in thumbnails)  # nothing changed there: no picture

    conv_c = (out / "layers/003-conv_c.html").read_text()
    assert "No kernel of this layer changed." in conv_c
    top = _ranked(conv_c, "most-changed-responses")
    assert top and "kernel unchanged" in _article(conv_c, f"f{top[0]}")
    assert f"003-conv_c/f{int(top[0]):03d}-map-delta.png" in _article(conv_c, f"f{top[0]}")
    assert assert_valid_links(out) > 50
