"""--dataset: listing a data set, streaming top-k examples per filter, class statistics, crops."""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz_report.analysis.activations import Peaks
from cnnviz_report.datasets import list_dataset
from cnnviz_report.errors import ImageLoadError
from cnnviz_report.phases.dataset_examples import ExampleCollector, card_examples, receptive_crop, selectivity


def peaks_of(maps: np.ndarray) -> Peaks:
    """What ``PeakProbe`` finds in a batch of (B, H, W, F) maps, the numpy way."""
    flat = np.where(np.isnan(maps), -np.inf, maps).reshape(maps.shape[0], -1, maps.shape[-1])
    return Peaks(flat.max(axis=1), flat.argmax(axis=1).astype(np.int32), maps.shape[1:3])


def test_shards_merged_in_order_find_what_one_pass_finds_ties_included():
    """The reduce step of the data-set pass's units (Ray shards): the same images, values and
    positions as one pass over all, equal maxima ranked by the earlier image in both."""
    from dataclasses import replace

    from cnnviz_report.phases.dataset_examples import merge_examples, plan_shards

    rng = np.random.default_rng(1)
    maps = rng.integers(0, 4, size=(70, 3, 3, 5)).astype(np.float32)  # many ties
    maps[40, :, :, 2] = np.nan
    labels = np.arange(70) % 2

    def collect(start, stop):
        collector = ExampleCollector(filters=5, classes=2, k=6)
        for first in range(start, stop, 8):
            last = min(stop, first + 8)
            collector.add(peaks_of(maps[first:last]), np.arange(first, last), labels[first:last])
        return collector.result()

    whole = collect(0, 70)
    shards = [(0, 24), (24, 48), (48, 70)]
    merged = merge_examples([collect(start, stop) for start, stop in shards], k=6)
    for name in ("values", "images", "positions", "class_counts", "class_maxima"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(whole, name))
    np.testing.assert_allclose(merged.class_sums, whole.class_sums)
    assert merged.map_hw == whole.map_hw == (3, 3)
    assert plan_shards(300, 32) == [(0, 128), (128, 256), (256, 300)]  # whole batches a shard

    import io

    from cnnviz_report.phases.dataset_examples import ShardExamples

    shard = ShardExamples((3, 8), (collect(0, 24), replace(collect(24, 48), skipped=(("x.png", "not an image"),))))
    stream = io.BytesIO()
    shard.to_npz(stream)  # what a unit of the pass leaves in the cache
    stream.seek(0)
    with np.load(stream) as stored:
        back = ShardExamples.from_npz(stored)
    assert back.layers == (3, 8) and back.parts[1].skipped == (("x.png", "not an image"),)
    for before, after in zip(shard.parts, back.parts):
        for name in ("values", "images", "positions", "class_sums", "class_counts", "class_maxima"):
            np.testing.assert_array_equal(getattr(after, name), getattr(before, name))
        assert after.map_hw == before.map_hw
    assert plan_shards(10, 200) == [(0, 10)]


def test_streaming_top_k_equals_ranking_everything_at_once_in_bounded_memory():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(50, 5, 6, 7)).astype(np.float32)
    maps[13, 2, 3, 4] = 99.0  # filter 4's best image is 13, at (2, 3)
    maps[21, :, :, 1] = np.nan  # a NaN map never ranks first
    labels = np.arange(50) % 3
    collector = ExampleCollector(filters=7, classes=3, k=4)
    for start in range(0, 50, 8):  # uneven batches
        collector.add(peaks_of(maps[start : start + 8]), np.arange(start, min(50, start + 8)), labels[start : start + 8])
        assert collector.values.shape == (7, min(4, start + 8))  # never more than k kept
    result = collector.result()
    peaks = np.where(np.isnan(maps), -np.inf, maps).reshape(50, -1, 7).max(axis=1)  # (images, filters)
    for number in range(7):
        expected = np.argsort(-peaks[:, number], kind="stable")[:4]
        assert list(result.images[number]) == list(expected)
        np.testing.assert_allclose(result.values[number], peaks[expected, number])
    assert card_examples(result, 4)[0] == (13, 99.0, (2, 3))
    assert 21 not in result.images[1]
    for label in range(3):  # class statistics of the per-image maxima
        finite = np.where(np.isfinite(peaks), peaks, 0.0)
        np.testing.assert_allclose(result.class_sums[label], finite[labels == label].sum(axis=0), rtol=1e-6)
        assert result.class_counts[label] == (labels == label).sum()
        np.testing.assert_allclose(result.class_maxima[label], peaks[labels == label].max(axis=0))


def test_ties_keep_the_earlier_image_and_fewer_images_than_k_leave_no_empty_examples():
    collector = ExampleCollector(filters=1, classes=0, k=5)
    collector.add(peaks_of(np.ones((2, 2, 2, 1), np.float32)), np.array([0, 1]))
    collector.add(peaks_of(np.ones((1, 2, 2, 1), np.float32)), np.array([2]))
    assert [image for image, _, _ in card_examples(collector.result(), 0)] == [0, 1, 2]


def test_class_selectivity_follows_morcos_et_al():
    collector = ExampleCollector(filters=3, classes=3, k=2)
    maps = np.zeros((6, 1, 1, 3), np.float32)
    labels = np.array([0, 0, 1, 1, 2, 2])
    maps[labels == 1, 0, 0, 0] = 4.0  # filter 0 fires for class 1 only
    maps[:, 0, 0, 1] = 2.0  # filter 1 fires the same for all
    maps[:, 0, 0, 2] = [3, 3, 1, 1, 1, 1]  # filter 2 prefers class 0: (3 - 1) / (3 + 1)
    collector.add(peaks_of(maps), np.arange(6), labels)
    best, index = selectivity(collector.result())
    assert best[0] == 1 and index[0] == pytest.approx(1.0)
    assert index[1] == pytest.approx(0.0)
    assert best[2] == 0 and index[2] == pytest.approx(0.5)


def test_a_crop_is_the_receptive_field_around_the_maximum_and_stays_inside_the_image():
    pixels = np.arange(32 * 32, dtype=np.float32).reshape(32, 32, 1)
    crop = receptive_crop(pixels, (3, 5), (8, 8), (6, 6))  # 4 px a position: centre (14, 22)
    assert crop.shape == (6, 6, 1) and crop[0, 0, 0] == pixels[11, 19, 0]
    edge = receptive_crop(pixels, (0, 7), (8, 8), (10, 10))  # pushed inside, not cut
    assert edge.shape == (10, 10, 1) and edge[0, -1, 0] == pixels[0, 31, 0]
    assert receptive_crop(pixels, (0, 0), (1, 1), (212, 212)).shape == (32, 32, 1)  # never beyond the image


def test_a_dataset_is_a_folder_read_recursively_with_classes_or_a_list_file(tmp_path):
    for relative in ("cats/a.png", "cats/deep/b.JPG", "dogs/c.png", "dogs/notes.txt", "dogs/.hidden.png",
                     ".git/x.png"):
        path = tmp_path / "data" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    dataset = list_dataset(str(tmp_path / "data"))
    assert [item.name for item in dataset.items] == ["cats/a.png", "cats/deep/b.JPG", "dogs/c.png"]
    assert dataset.classes == ("cats", "dogs") and [item.label for item in dataset.items] == [0, 0, 1]
    assert dataset.ignored == 1  # notes.txt; hidden files are not counted
    (tmp_path / "data" / "loose.png").write_bytes(b"x")  # an image outside any class folder: no classes
    assert list_dataset(str(tmp_path / "data")).classes == ()
    listing = tmp_path / "list.txt"
    listing.write_text("# images\ndata/cats/a.png\tcat\n\ndata/dogs/c.png\tdog\n")
    listed = list_dataset(str(listing))
    assert listed.classes == ("cat", "dog") and listed.items[1].path == str(tmp_path / "data/dogs/c.png")
    listing.write_text("data/cats/a.png\tcat\ndata/dogs/c.png\n")
    with pytest.raises(ImageLoadError, match=r"list.txt:2"):
        list_dataset(str(listing))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageLoadError, match="no image files"):
        list_dataset(str(tmp_path / "empty"))
    with pytest.raises(ImageLoadError, match="no such folder"):
        list_dataset(str(tmp_path / "missing"))
    assert dataset.digest() != listed.digest()


PER_CLASS = 100  # 1,200 images: enough for conv4's top examples to settle (240 were not)


@pytest.fixture(scope="module")
def demo_dataset(tmp_path_factory):
    """Labelled images from the demo model's own generator, one sub-folder per class (gratings at
    six orientations, shapes, checkerboards, rings), and a file that is not an image."""
    import importlib.util
    from pathlib import Path

    from PIL import Image

    spec = importlib.util.spec_from_file_location(
        "train_demo_model", Path(__file__).parent.parent / "examples" / "train_demo_model.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    root = tmp_path_factory.mktemp("dataset")
    rng = np.random.default_rng(5)
    for number in range(PER_CLASS * len(generator.CLASSES)):
        label = number % len(generator.CLASSES)
        folder = root / generator.CLASSES[label].replace("°", "deg").replace(" ", "_")
        folder.mkdir(exist_ok=True)
        Image.fromarray(generator.make_image(rng, label)).save(folder / f"{number:04d}.png")
    (root / "circle" / "broken.png").write_bytes(b"not a png")
    return root


@pytest.fixture(scope="module")
def dataset_site(demo_dataset, tmp_path_factory):
    """The demo's deepest layer, all 64 cards, with the data set (--keep-going past the broken file)."""
    from cnnviz_report.build import build_site
    from cnnviz_report.config import ReportConfig

    out = tmp_path_factory.mktemp("dataset-site") / "site"
    config = ReportConfig(dataset=str(demo_dataset), out=str(out), layers=("conv4",), keep_going=True,
                          use_cache=False, dataset_batch_size=64)
    events = []
    report = build_site(config, events.append).report
    return config, report, out, events


def test_the_dataset_steps_progress_runs_from_images_to_crops_and_ends_where_the_next_begins(dataset_site):
    from cnnviz_report.progress import DATASET

    *_, events = dataset_site
    mine = [event for event in events if event.subject == DATASET]
    details = [event.detail for event in mine]
    assert details[0] == "" and "images 128 of" in details[2] and details[-1] == "crops"
    done = [event.work_done for event in mine]
    assert done == sorted(done) and 0 < done[0] < done[-1] < 1
    after = events[events.index(mine[-1]) + 1]
    assert after.subject != DATASET and after.work_done > done[-1]  # the crops are the rest of the step


def test_a_build_with_a_dataset_shows_each_cards_top_crops_and_classes(demo_dataset, dataset_site):
    import csv
    import io

    from conftest import assert_valid_links

    from PIL import Image

    from cnnviz_report.analysis.activations import FeatureProbe
    from cnnviz_report.loading import load_image
    from cnnviz_report.analysis.keras_loading import load_model
    from cnnviz_report.phases.dataset_examples import CROP_SIDE, crop_picture

    config, report, out, _ = dataset_site
    assert report.dataset.images == PER_CLASS * 12 and len(report.dataset.classes) == 12
    assert [name for name, _ in report.dataset.skipped] == [str(demo_dataset / "circle" / "broken.png")]
    layer = report.layers[-1]
    loaded = load_model(config)
    probe = FeatureProbe(loaded.model, [layer.info])
    assert len(layer.cards) == 64
    for card in layer.cards[:8]:
        examples = card.examples.examples
        assert len(examples) == 9 and [e.value for e in examples] == sorted((e.value for e in examples), reverse=True)
        assert (out / examples[0].picture).is_file()
        crops = np.asarray(Image.open(out / card.examples.crops.path).convert("RGB"))
        assert crops.shape == (CROP_SIDE, 9 * CROP_SIDE, 3) and [e.tile for e in examples] == list(range(9))
        # the top example's number is the filter's maximum on that image, computed afresh
        image = load_image(str(demo_dataset / examples[0].name), 0, loaded.input_hw, loaded.channels)
        fresh = probe(loaded.model_input(image.pixels[None]))[layer.info.index][0, :, :, card.number]
        assert examples[0].value == pytest.approx(float(fresh.max()), rel=1e-4)
        # the first tile is the receptive field around that maximum, cut from the input the model
        # saw (JPEG: close to it, and far from the field at the mirrored position)
        row, column = np.unravel_index(np.argmax(fresh), fresh.shape)
        expected = crop_picture(receptive_crop(image.pixels, (row, column), fresh.shape, layer.info.receptive_field))
        error = np.abs(crops[:, :CROP_SIDE].astype(int) - expected).mean()
        elsewhere = crop_picture(receptive_crop(image.pixels, (fresh.shape[0] - 1 - row, fresh.shape[1] - 1 - column),
                                                fresh.shape, layer.info.receptive_field))
        assert error < 16 and error < np.abs(crops[:, :CROP_SIDE].astype(int) - elsewhere).mean() / 2
        assert card.examples.chart is not None and len(card.examples.class_means) == 12
    page = (out / f"layers/{layer.slug}.html").read_text()
    assert 'id="classes"' in page and "Dataset examples" in page
    assert f"{PER_CLASS * 12:,} images, the top 9 of each filter" in (out / "index.html").read_text()
    rows = list(csv.DictReader(io.StringIO((out / "health.csv").read_text())))
    assert len(rows) == layer.info.filters and all(row["dataset_top"] and row["dataset_top_image"] for row in rows)
    assert all(row["dataset_class"] for row in rows)
    assert assert_valid_links(out) > 600


def _stripe_orientation(picture: np.ndarray) -> tuple[float, float]:
    """(the orientation in degrees, 0..180 with y pointing down, along which a picture's stripes
    run, and how strongly one orientation dominates: the structure tensor's coherence, 0..1)."""
    grey = np.asarray(picture, np.float64).mean(axis=-1)
    gy, gx = np.gradient(grey)
    jxx, jyy, jxy = (gx * gx).sum(), (gy * gy).sum(), (gx * gy).sum()
    gradient = 0.5 * np.degrees(np.arctan2(2 * jxy, jxx - jyy))
    return (gradient + 90.0) % 180.0, float(np.hypot(jxx - jyy, 2 * jxy) / (jxx + jyy + 1e-12))


def test_the_top_examples_agree_with_the_ascent_pictures(dataset_site):
    """The proof that the examples mean something: a conv4 filter whose gradient-ascent picture is
    an oriented grating finds its top examples among the gratings of that orientation (the
    generator's grating at angle theta has stripes along theta). Measured: 22 such filters, 95 %
    within 20 degrees, median 8."""
    from PIL import Image

    _, report, out, _ = dataset_site
    layer = report.layers[-1]
    differences = []
    for card in layer.cards:
        angle, coherence = _stripe_orientation(np.asarray(Image.open(out / card.ascent.path).convert("RGB")))
        gratings = [int(e.name.split("/")[0].split("_")[1].removesuffix("deg")) for e in card.examples.examples
                    if e.name.startswith("grating")]
        if coherence > 0.4 and gratings:
            theta = max(set(gratings), key=lambda value: (gratings.count(value), -value))
            differences.append(abs((angle - theta + 90.0) % 180.0 - 90.0))
    assert len(differences) >= 10, differences
    assert np.mean(np.array(differences) <= 20) >= 0.8, sorted(differences)


def test_an_unreadable_dataset_file_stops_the_build_and_names_it(demo_dataset, tmp_path, capsys):
    from cnnviz_report.cli import main

    args = ["build", "--dataset", str(demo_dataset), "--out", str(tmp_path / "site"), "--layers", "conv1",
            "--max-filters", "2", "--ascent-steps", "0"]
    code = main(args + ["--no-stream"])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert code != 0 and not (tmp_path / "site").exists()
    assert "broken.png" in error and "not an image" in error, error
    # streamed, the pass comes after the first look: the site stays, saying why it stopped
    assert main(args) != 0 and "broken.png" in capsys.readouterr().err.strip().splitlines()[-1]
    index = " ".join((tmp_path / "site" / "index.html").read_text().split())
    assert "This build stopped before it ended" in index and "the data-set examples" in index and "broken.png" in index
    assert main(["build", "--dataset", str(tmp_path / "missing"), "--out", str(tmp_path / "site")]) != 0
    assert "no such folder or list file" in capsys.readouterr().err


def test_a_rebuild_reuses_the_pass_and_a_changed_file_redoes_it(demo_dataset, tmp_path, monkeypatch):
    import cnnviz_report.build as build
    from cnnviz_report.config import ReportConfig

    config = ReportConfig(dataset=str(demo_dataset), out=str(tmp_path / "site"), layers=("conv1",), max_filters=2,
                          ascent_steps=0, keep_going=True)
    first = build.build_site(config).report
    passes = []
    from cnnviz_report.phases import dataset_examples

    real = dataset_examples.stream_examples
    monkeypatch.setattr(dataset_examples, "stream_examples",
                        lambda *args, **kwargs: passes.append(1) or real(*args, **kwargs))
    again = build.build_site(config).report
    assert passes == [] and again.dataset.skipped == first.dataset.skipped
    assert [e.value for e in again.layers[0].cards[1].examples.examples] == \
        [e.value for e in first.layers[0].cards[1].examples.examples]
    (demo_dataset / "circle" / "extra.png").write_bytes((demo_dataset / "rings" / "0011.png").read_bytes())
    try:
        build.build_site(config)
    finally:
        (demo_dataset / "circle" / "extra.png").unlink()
    from cnnviz_report.phases.dataset_examples import plan_shards

    assert len(passes) == len(plan_shards(1 + sum(1 for _ in demo_dataset.rglob("*.png")), 32))  # every shard again


def test_a_list_naming_a_missing_image_stops_before_any_work_naming_the_line_and_the_image(tmp_path, capsys,
                                                                                          monkeypatch):
    """Not "cannot write the site: No such file or directory": the list file's line and the image
    it names, before the model is loaded, and an existing site stays as it was; --keep-going
    skips the missing image like an unreadable one."""
    from conftest import site_files
    from PIL import Image

    import cnnviz_report.build as build
    from cnnviz_report.cli import main
    from cnnviz_report.config import ReportConfig

    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((12, 12, 3), 90 if name == "a.png" else 200, np.uint8)).save(tmp_path / name)
    listing = tmp_path / "list.txt"
    listing.write_text("a.png\tdark\nb.png\tlight\n")
    out = tmp_path / "site"
    fast = ["--out", str(out), "--layers", "conv1", "--max-filters", "2", "--ascent-steps", "0", "--quiet"]
    assert main(["build", "--dataset", str(listing), *fast]) == 0
    before = site_files(out)
    listing.write_text("a.png\tdark\n# a comment\nmissing.png\tlight\n")
    loads = []
    monkeypatch.setattr(build, "load_model", lambda config: loads.append(config) or pytest.fail("loaded the model"))
    assert main(["build", "--dataset", str(listing), *fast]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("cnnviz_report: error: "), error
    assert f"{listing}:3: {tmp_path / 'missing.png'}: no such image file" in error, error
    assert loads == [] and site_files(out) == before
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name or p.name.startswith(".cnnviz")]
    monkeypatch.undo()

    config = ReportConfig(dataset=str(listing), out=str(tmp_path / "kept"), layers=("conv1",), max_filters=2,
                          ascent_steps=0, keep_going=True, use_cache=False)
    report = build.build_site(config).report
    assert report.dataset.images == 1
    assert report.dataset.skipped == ((str(tmp_path / "missing.png"), "no such image file"),)
