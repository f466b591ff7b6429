"""--dataset: listing a data set, streaming top-k examples per filter, class statistics, crops."""

from __future__ import annotations

import numpy as np
import pytest

from cnnviz_report.datasets import list_dataset
from cnnviz_report.errors import ImageLoadError
from cnnviz_report.phases.dataset_examples import ExampleCollector, card_examples, receptive_crop, selectivity


def test_streaming_top_k_equals_ranking_everything_at_once_in_bounded_memory():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(50, 5, 6, 7)).astype(np.float32)
    maps[13, 2, 3, 4] = 99.0  # filter 4's best image is 13, at (2, 3)
    maps[21, :, :, 1] = np.nan  # a NaN map never ranks first
    labels = np.arange(50) % 3
    collector = ExampleCollector(filters=7, classes=3, k=4)
    for start in range(0, 50, 8):  # uneven batches
        collector.add(maps[start : start + 8], np.arange(start, min(50, start + 8)), labels[start : start + 8])
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
    collector.add(np.ones((2, 2, 2, 1), np.float32), np.array([0, 1]))
    collector.add(np.ones((1, 2, 2, 1), np.float32), np.array([2]))
    assert [image for image, _, _ in card_examples(collector.result(), 0)] == [0, 1, 2]


def test_class_selectivity_follows_morcos_et_al():
    collector = ExampleCollector(filters=3, classes=3, k=2)
    maps = np.zeros((6, 1, 1, 3), np.float32)
    labels = np.array([0, 0, 1, 1, 2, 2])
    maps[labels == 1, 0, 0, 0] = 4.0  # filter 0 fires for class 1 only
    maps[:, 0, 0, 1] = 2.0  # filter 1 fires the same for all
    maps[:, 0, 0, 2] = [3, 3, 1, 1, 1, 1]  # filter 2 prefers class 0: (3 - 1) / (3 + 1)
    collector.add(maps, np.arange(6), labels)
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
