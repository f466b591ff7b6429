"""What a loaded model is to the report (``LoadedModel``: the model behind the seam and how pixels
reach it) and image files -> arrays at the model's input size. MODEL arguments become a model in
``analysis.model_loading`` (Keras's in ``keras_loading``, PyTorch's in ``torch_loading``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageLoadError, UsageError

if TYPE_CHECKING:
    from .analysis.seam import ModelRun, ModelWalk

DEMO_MODEL_RESOURCE = ("cnnviz_report.demo", "demo_cnn.keras")
# Decided by content (what Pillow identifies), never by the file name's extension.
IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP", "TIFF")  # JPEG includes multi-picture (MPO)
DISPLAY_MAX_SIDE = 1024  # originals are kept for display, scaled down to this


@dataclass(frozen=True)
class LoadedModel:
    """A ready Keras model plus what is needed to feed it pixels."""

    model: object  # keras.Model; typed loosely so this module's users need not import keras
    name: str
    source: str  # "demo", "application", "file" or "keras_hub" (a preset)
    weights_label: str
    preprocess_mode: str
    preprocess: Callable  # float pixels (N, H, W, C) in 0..255 -> model input; numpy or tensor
    input_hw: tuple[int, int] | None  # None when the model does not take images
    channels: int | None
    channels_first: bool = False  # the model takes (N, C, H, W); pixels are always (N, H, W, C)
    free_size: bool = False  # the model accepts any height and width; input_hw is the size chosen
    file_sha256: str | None = None
    preprocess_reason: str = ""  # why --preprocess auto chose the mode, for the pages
    libraries: tuple[str, ...] = ()  # packages the model's classes came from ("keras_hub"), for the manifest
    framework: str = "keras"  # "torch": a PyTorch nn.Module (analysis.torch_model), its factory file in file_sha256
    class_names: tuple[str, ...] | None = None  # from the weights' own metadata (torchvision, timm)

    def model_input(self, pixels: np.ndarray) -> np.ndarray:
        """(N, H, W, C) pixels in 0..255 -> what the model takes: preprocessed, in its layout."""
        model_input = np.asarray(self.preprocess(pixels), dtype=np.float32)
        return np.moveaxis(model_input, -1, 1) if self.channels_first else model_input

    @property
    def walk(self) -> ModelWalk:
        """The model's layers, kernels and units, read through the seam (``analysis.seam``)."""
        return self._behind_the_seam

    @property
    def run(self) -> ModelRun:
        """The model run through the seam: probes, class scores, attribution, the ascent."""
        return self._behind_the_seam

    @functools.cached_property
    def _behind_the_seam(self):
        """Made once: a PyTorch module's graph is traced when it is put behind the seam."""
        if self.framework == "torch":
            from .analysis.torch_model import TorchModel

            return TorchModel(self.model, (self.channels, *self.input_hw), self.code_digest)
        from .analysis.keras_model import KerasModel

        return KerasModel(self.model)

    @property
    def code_digest(self) -> str | None:
        """What a PyTorch model's ``forward`` comes from, for the cache: the factory file's bytes,
        or the library and its version (``torchvision:``, ``timm:``)."""
        if self.file_sha256 or not self.libraries:
            return self.file_sha256
        from importlib.metadata import version

        return " ".join(f"{library}=={version(library)}" for library in self.libraries)

    @property
    def geometry(self) -> dict:
        """How pixels reach the model: part of the key of every cached result computed from it."""
        return {"input_hw": self.input_hw, "channels": self.channels, "channels_first": self.channels_first,
                "preprocess": self.preprocess_mode}


@dataclass(frozen=True)
class InputImage:
    """One user image: the original for display and the pixels at the model's input size."""

    index: int
    name: str
    source: str
    original: np.ndarray  # uint8 (H, W, 3), at most DISPLAY_MAX_SIDE on its longer side
    pixels: np.ndarray  # float32 (H, W, C) in 0..255 at the model's input size


# --------------------------------------------------------------------------- files


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def demo_model_path() -> str:
    """The bundled demo model file (inside the installed package)."""
    package, filename = DEMO_MODEL_RESOURCE
    return str(resources.files(package) / filename)


def first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300] + ("..." if len(text) > 300 else "")


# --------------------------------------------------------------------------- images


def demo_image_path() -> str:
    """Grace Hopper's portrait, shipped with matplotlib's sample data."""
    from matplotlib import cbook

    return str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def expand_image_arguments(arguments: tuple[str, ...]) -> list[str]:
    """Files as given; folders as every file directly in them, sorted (none skipped silently:
    a file that is not an image fails like any other); missing paths fail."""
    paths: list[str] = []
    for argument in arguments:
        if os.path.isdir(argument):
            found = sorted(
                os.path.join(argument, entry)
                for entry in os.listdir(argument)
                if os.path.isfile(os.path.join(argument, entry))
            )
            if not found:
                raise ImageLoadError(argument, "folder holds no files")
            paths.extend(found)
        elif os.path.isfile(argument):
            paths.append(argument)
        else:
            raise ImageLoadError(argument, "no such file or folder")
    return paths


IMAGE_CHANNELS = (1, 3, 4)  # grey, RGB, RGBA: what an image file can feed a model


def _to_rgb(image: Image.Image, keep_alpha: bool = False) -> Image.Image:
    """Any Pillow mode -> RGB, compositing transparency onto white; RGBA with ``keep_alpha``.

    A 4-channel model is taken to read RGBA, so its alpha is passed through (opaque when the
    file has none) rather than composited away.
    """
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        if keep_alpha:
            return rgba
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if keep_alpha:
        return _to_rgb(image).convert("RGBA")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) * 255.0 if high > low else np.zeros_like(values)
        return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")
    return image.convert("RGB")


def _open_upright(path: str, channels: int) -> tuple[Image.Image, Image.Image | None]:
    """(RGB, RGBA for a 4-channel model) of one image file, EXIF orientation applied.

    Formats come from an allow-list checked against the content. Pillow's decompression-bomb
    limit is kept and its warning (half the limit) is an error here too: nothing is decoded
    that could exhaust memory. Animations give their first frame.
    """
    if not os.path.isfile(path):  # gone since it was listed, or never there: the image, not the site, is at fault
        raise ImageLoadError(path, "a folder, not an image file" if os.path.isdir(path) else "no such image file")
    if os.path.getsize(path) == 0:
        raise ImageLoadError(path, "the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # e.g. "Corrupt EXIF data": decoded or failed anyway
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=IMAGE_FORMATS) as opened:
                opened.seek(0)
                upright = ImageOps.exif_transpose(opened)
                return _to_rgb(upright), _to_rgb(upright, keep_alpha=True) if channels == 4 else None
    except UnidentifiedImageError as exc:
        raise ImageLoadError(path, f"not an image in an allowed format ({', '.join(IMAGE_FORMATS)})") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(path, f"refusing a decompression bomb: {first_line(exc)}") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageLoadError(path, f"cannot read image: {first_line(exc)}") from exc


def _model_pixels(rgb: Image.Image, rgba: Image.Image | None, size_hw: tuple[int, int], channels: int) -> np.ndarray:
    """The image resized to the model's input, as float32 H x W x channels in 0..255."""
    height, width = size_hw
    if channels == 4:
        return np.asarray(rgba.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
    resized = rgb.resize((width, height), Image.Resampling.BILINEAR)
    if channels == 1:
        return np.asarray(resized.convert("L"), dtype=np.float32)[:, :, None]
    return np.asarray(resized, dtype=np.float32)


def load_pixels(path: str, size_hw: tuple[int, int], channels: int) -> np.ndarray:
    """Only what the model sees of one image file (a data set's thousands of images need no
    display copy)."""
    return _model_pixels(*_open_upright(path, channels), size_hw, channels)


def load_image(path: str, index: int, size_hw: tuple[int, int], channels: int) -> InputImage:
    """Read one image as the model sees it, and a display copy of the original for its page."""
    rgb, rgba = _open_upright(path, channels)
    display = rgb.copy()
    display.thumbnail((DISPLAY_MAX_SIDE, DISPLAY_MAX_SIDE), Image.Resampling.LANCZOS)
    return InputImage(
        index=index,
        name=os.path.basename(path),
        source=path,
        original=np.asarray(display, dtype=np.uint8),
        pixels=_model_pixels(rgb, rgba, size_hw, channels),
    )


def load_images(arguments: tuple[str, ...], size_hw: tuple[int, int], channels: int,
                keep_going: bool = False) -> tuple[list[InputImage], list[ImageLoadError]]:
    """The images, and with ``keep_going`` the errors of those that could not be read."""
    if channels not in IMAGE_CHANNELS:
        raise UsageError(
            "--images", f"the model takes {channels}-channel input and image files give 1, 3 or 4 (RGBA); "
            "build without --images to draw its filters and gradient-ascent images")
    images: list[InputImage] = []
    skipped: list[ImageLoadError] = []
    for path in expand_image_arguments(arguments):
        try:
            images.append(load_image(path, len(images), size_hw, channels))
        except ImageLoadError as error:
            if not keep_going:
                raise
            skipped.append(error)
    if skipped and not images:
        raise ImageLoadError(skipped[0].subject, f"{skipped[0].reason} (and no other image could be read)")
    return images, skipped
