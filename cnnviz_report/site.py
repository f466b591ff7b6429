"""Report records -> HTML pages, the stylesheet, ``.nojekyll``. No TensorFlow here.

View-models are plain dicts made here; templates only loop and print. Autoescaping is on and
undefined names fail, because layer names are user data and a silent blank is a bug.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path
from typing import NamedTuple

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from . import paths, render
from .analysis.ascent_parts import SMALL_CANVAS, recipe_name
from .config import MOSAIC_FILTERS
from .formatting import fmt_axes, fmt_int, fmt_probability, fmt_shape, preprocess_words
from .health import ASCENT_JUDGE_STEPS, BADGE_LABELS
from .inspection import LayerInfo
from .records import (RANKED_FILTERS, DiffReport, FilterCard, LayerReport, Report, ranked_by_response,
                      ranked_layers)

# Everything the site needs is in the site: no inline script or style, nothing from elsewhere.
CONTENT_SECURITY_POLICY = ("default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
                           "base-uri 'none'; form-action 'none'")


# The keys site.js knows, for the "?" panel; each page lists those that work on it.
KEYS_HELP = ({"names": ["?"], "does": "show or hide this list"}, {"names": ["Esc"], "does": "close it"})
KEYS_SEARCH = ({"names": ["/"], "does": "search the layer tables"},)
KEYS_PAGER = ({"names": ["←", "k"], "does": "previous layer"}, {"names": ["→", "j"], "does": "next layer"})
KEYS_CARDS = ({"names": ["g"], "does": "go to a filter's card by its number"},)


class Page(NamedTuple):
    path: str  # site path
    template: str
    context: dict


def build_date() -> str:
    """The date shown on the pages: SOURCE_DATE_EPOCH's when set (reproducible builds), else today's."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    seconds = int(epoch) if epoch.isdigit() else time.time()
    return time.strftime("%Y-%m-%d", time.gmtime(seconds))


def templates_dir() -> Path:
    """The packaged templates (wheel installs), else the repository's top-level folder."""
    packaged = Path(__file__).parent / "templates"
    if (packaged / "index.html").is_file():
        return packaged
    return Path(__file__).parent.parent / "templates"


def make_environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(templates_dir())),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


# --------------------------------------------------------------------------- view-models


SMALL_PICTURE = 320  # pictures narrower than this are shown at twice their size
TALL_PICTURE = 1200  # pictures taller than this (and half again as tall as wide) scroll in a box


def colormap_file(name: str) -> str:
    return f"static/cmap-{name}.png"


def _scale(scale) -> dict | None:
    """A colour bar: the map's strip and real numbers at its ends (and 0 in the middle of a signed one)."""
    if scale is None:
        return None
    signed = scale.low < 0 < scale.high and abs(scale.low + scale.high) <= 1e-9 * max(1.0, scale.high)
    # + 0.0 turns -0.0 into 0.0, so a bar of an unchanged difference does not read "-0"
    low, high = (f"{scale.low + 0.0:.3g}", f"{scale.high + 0.0:.3g}") if scale.shared else ("tile min", "tile max")
    return {"strip": colormap_file(scale.colormap), "low": low, "mid": "0" if signed and scale.shared else "",
            "high": high, "label": scale.label, "shared": scale.shared}


def _asset(asset) -> dict | None:
    if asset is None:
        return None
    zoom = 2 if asset.width < SMALL_PICTURE else 1
    width, height = asset.width * zoom, asset.height * zoom
    # a one-column strip would be most of the page (render wraps few-channel grids; a safety net)
    tall = height > TALL_PICTURE and height >= 1.5 * width
    return {"path": asset.path, "width": width, "height": height, "alt": asset.alt, "tall": tall,
            "scale": _scale(asset.scale), "tiles": _tiles(asset.tiles)}


def _tiles(tiles) -> dict | None:
    """A picture's filters as a grid of links over it: the columns (tiles on the first row) and
    the numbers in reading order (the grid's rows are equal, so CSS lays the links over them)."""
    if not tiles:
        return None
    return {"columns": sum(1 for tile in tiles if tile.y == tiles[0].y), "numbers": [tile.number for tile in tiles],
            "cards": None}  # a layer page's grids: each number's card link (its cards may span pages)


def _layer_row(info: LayerInfo, pages: dict[int, str]) -> dict:
    kernel = fmt_shape(info.kernel_shape)
    if info.pointwise_shape:
        kernel = f"{kernel} + {fmt_shape(info.pointwise_shape)}"
    return {
        "index": info.index,
        "name": info.name,
        "qualified_name": info.qualified_name,
        "depth": info.depth,
        "type": info.type_name,
        "output_shape": fmt_shape(info.output_shape),
        "kernel_shape": kernel,
        "filters": fmt_int(info.filters),
        "params": fmt_int(info.params),
        "receptive_field": fmt_axes(info.receptive_field),
        "stride": fmt_axes(info.effective_stride),
        "is_conv": info.is_conv,
        "is_submodel": info.is_submodel,
        "page": pages.get(info.index),
        "not_drawn_reason": info.not_drawn_reason,
    }


def size_words(report: Report) -> str:
    """"built at 224 × 224; the model takes any size" for a model whose input size is free."""
    height, width = report.input_hw
    return f"{height} × {width} pixels; the model takes any size (choose with --input-size)"


def _model_facts(report: Report) -> list[tuple[str, str]]:
    model = report.model
    return [
        ("Model", report.model_name),
        ("Source", report.model_source),
        ("Weights", report.weights),
        ("Input shape", fmt_shape(model.input_shape)),
        *([("Built at", size_words(report))] if report.free_size else []),
        ("Output shape", fmt_shape(model.output_shape)),
        ("Input preprocessing", preprocess_words(report.preprocess)),
        ("Parameters", fmt_int(model.total_params)),
        ("Trainable parameters", fmt_int(model.trainable_params)),
        ("Non-trainable parameters", fmt_int(model.non_trainable_params)),
        ("Layers", fmt_int(len(model.layers))),
        ("Convolution layers", fmt_int(len(model.conv_layers))),
    ]


def _dataset_words(dataset) -> str:
    """``--dataset`` in words: what was read, its classes, what was skipped."""
    words = f"{dataset.source}: {fmt_int(dataset.images)} images, the top {dataset.top} of each filter on its card"
    if dataset.classes:
        words += f"; {len(dataset.classes)} classes ({', '.join(dataset.classes[:12])}{', ...' if len(dataset.classes) > 12 else ''})"
    if dataset.skipped:
        words += f"; {len(dataset.skipped)} unreadable file(s) skipped"
    return words


def _settings_view(report: Report) -> list[tuple[str, str]]:
    """The build's settings in words, with the values actually used (not ``None`` for defaults)."""
    s = report.settings
    ascent = "off (--ascent-steps 0)" if not s["ascent_steps"] else (
        f"{s['ascent_mode']} mode, {s['ascent_steps']} steps, step size {s['ascent_learning_rate']:g}, seed {s['seed']}; "
        + ("the most activated filters" if s["select"] == "top" else "the first filters"))
    return [
        ("Model", s["model"] or "the bundled demo model"),
        ("Weights", s["weights"] or report.weights),
        ("Images", ", ".join(image.name for image in report.images) or "none"),
        *([("Dataset", _dataset_words(report.dataset))] if report.dataset else []),
        ("Layers", ", ".join(s["layers"]) or f"all {len(report.model.conv_layers)} convolution layers"),
        ("Filters per layer", "every filter, in grids, mosaics and cards" if s["max_filters"] == "all"
         else f"at most {s['max_filters']} in grids and cards, {min(MOSAIC_FILTERS, s['max_filters'])} in mosaics"),
        ("Unit", "response: after the BatchNormalization and activation layers that follow each conv alone"
         if s["unit"] == "response" else "raw: each conv layer's own output"),
        ("Gradient ascent", ascent),
        ("Input size", "×".join(map(str, s["input_size"])) if s["input_size"] else "the model's own"),
        ("Preprocessing", ("auto: " if s["preprocess"] == "auto" else "") + preprocess_words(report.preprocess)
         + (f"; {report.preprocess_reason}" if report.preprocess_reason else "")),
        ("Unreadable images and failing layers", "skipped (--keep-going)" if s["keep_going"] else "stop the build"),
        ("Reviewer's notes", s["notes"] or "none"),
        ("Single-file report", s["single_file"] or "none"),
    ]


def _channels_note(channels: int | None) -> str:
    """How a mosaic tile shows a canvas that is neither grey nor RGB."""
    if channels in (None, 1, 3):
        return ""
    colour = "channels 1-3 as colour, then " if channels > 3 else ""
    first = 4 if channels > 3 else 1
    return f"The model reads {channels} channels: each tile shows {colour}channels {first}-{channels} as grey panels."


def _health_view(health, card_links: dict[int, dict]) -> dict:
    """The badges (each a link to its list of filters on the layer page) and those lists, each
    filter a link to its card (``card_links``; every filter a badge counts has one)."""
    if health is None:
        return {"badges": [], "summary": "", "lists": []}
    badges = [{"key": key, "label": BADGE_LABELS[key], "count": count, "title": meaning, "anchor": f"health-{key}",
               "numbers": [{"number": n, "card": card_links[n]} for n in health.filters_of(key)]}
              for key, count, meaning in health.badges]
    return {"badges": badges, "summary": ", ".join(f"{b['count']} {b['label']}" for b in badges), "lists": badges}


def _flagged_only_cards(layer_report: LayerReport, drawn: set[int]) -> list:
    """Filters a badge counts that got no card (beyond --max-filters): a card of numbers each, so
    every counted filter can be reached."""
    health = layer_report.health
    if health is None:
        return []
    counted = sorted({n for key in health.counts for n in health.filters_of(key)} - drawn)
    return [FilterCard(number, None) for number in counted]


def _card_findings(layer_report: LayerReport) -> dict[int, list[tuple[str, str]]]:
    """Per filter, its health findings as (key, words): the key is LayerHealth.counts' name (what
    the page's card filter matches), the words are the card's badge."""
    health = layer_report.health
    findings: dict[int, list[tuple[str, str]]] = {}
    if health is not None:
        for key, numbers in (("dead", health.dead), ("constant", health.constant),
                             ("nonfinite", health.kernel.nonfinite), ("norm_outliers", health.kernel.norm_outliers)):
            for number in numbers:
                findings.setdefault(number, []).append((key, BADGE_LABELS[key]))
        for number, earlier, cosine in health.kernel.duplicates:
            findings.setdefault(number, []).append(("duplicates", f"repeats filter {earlier} (cosine {cosine:.3f})"))
    return findings


def _card_views(layer_report: LayerReport, images_by_index: dict) -> list[dict]:
    health = layer_report.health
    findings = _card_findings(layer_report)
    views = []
    stats = layer_report.stats
    cards = list(layer_report.cards) + _flagged_only_cards(layer_report, {card.number for card in layer_report.cards})
    for card in cards:
        norm = health.kernel.norms[card.number] if health is not None else None
        measured = stats is not None and card.number < stats.max.shape[1]
        found = findings.get(card.number, [])
        keys = [key for key, _ in found] + (["ascent_dead"] if card.ascent_dead else [])
        views.append({
            "on_images": {"images": stats.images, "mean": f"{stats.mean[:, card.number].mean():.3g}",
                          "max": f"{stats.max[:, card.number].max():.3g}",
                          "active": f"{stats.active[:, card.number].mean():.0%}"} if measured else None,
            "number": card.number,
            "anchor": paths.filter_anchor(card.number),
            "findings": " ".join(keys),  # what the card filter matches (data-findings)
            "kernel": _asset(card.kernel),
            "ascent": _asset(card.ascent),
            "ascent_activation": "" if card.ascent_quality is None else f"{card.ascent_quality.activation:.3g}",
            "ascent_kept": _share(card.ascent_quality.kept if card.ascent_quality else None),
            "ascent_high_frequency": _share(card.ascent_quality.high_frequency if card.ascent_quality else None),
            "ascent_dead": card.ascent_dead,
            "examples": [{"tile": e.tile, "alt": e.alt, "value": f"{e.value:.3g}", "picture": e.picture,
                          "name": e.name} for e in card.examples.examples] if card.examples else [],
            "example_crops": _asset(card.examples.crops) if card.examples else None,
            "class_chart": _asset(card.examples.chart) if card.examples else None,
            "maps": _asset(card.maps),
            "kernel_norm": "" if norm is None else f"{norm:.3g}",
            "flags": [words for _, words in found],
            "findings_words": ", ".join([words for _, words in found] + (["ascent-dead"] if card.ascent_dead else [])),
            "top_images": [{
                "name": images_by_index[stat.image_index].name,
                "page": paths.image_page(images_by_index[stat.image_index].slug),
                "mean": f"{stat.mean:.3g}", "max": f"{stat.max:.3g}", "active": f"{stat.active:.0%}",
            } for stat in card.top_images],
        })
    return views


def _card_pages(slug: str, cards: list[dict]) -> list[dict]:
    """The layer's cards in pages of CARDS_PER_PAGE (each card gets its ``link``, the page and
    anchor its links go to): per page its site path, its cards, their numbers' range and its
    card filter's choices."""
    pages = []
    for page, start in enumerate(range(0, len(cards), paths.CARDS_PER_PAGE)):
        chunk = cards[start : start + paths.CARDS_PER_PAGE]
        for card in chunk:
            card["link"] = {"page": paths.card_page(slug, page), "anchor": card["anchor"]}
        pages.append({"page": paths.card_page(slug, page), "number": page + 1, "cards": chunk,
                      "first": chunk[0]["number"], "last": chunk[-1]["number"],
                      "card_filter": _card_filter(chunk)})
    return pages


def _card_filter(cards: list[dict]) -> list[dict]:
    """The card filter's choices: every card, the cards with any finding, then one choice per
    finding that some card has ({"key": what data-findings must hold ("" every card, "*" any)})."""
    keys = [card["findings"].split() for card in cards]
    choices = [{"key": "", "label": "all", "count": len(cards)}]
    flagged = sum(1 for found in keys if found)
    if flagged:
        choices.append({"key": "*", "label": "any finding", "count": flagged})
    for key, label in BADGE_LABELS.items():
        count = sum(1 for found in keys if key in found)
        if count:
            choices.append({"key": key, "label": label, "count": count})
    return choices


def _contents(view: dict) -> list[dict]:
    """The layer page's table of contents: the sections it has, in page order (anchors as layer.html
    sets them); the feature maps as one entry listing their images."""
    entries = []
    if view["notes"]:
        entries.append({"anchor": "notes", "label": "Reviewer's notes", "children": []})
    if view["filters"]:
        entries.append({"anchor": "filters", "label": "Kernel weights", "children": []})
    if view["mosaic"]:
        entries.append({"anchor": "ascent", "label": "Gradient ascent", "children": []})
    if view["features"]:
        children = [{"anchor": f["anchor"], "label": f["image_name"]} for f in view["features"]]
        entries.append({"anchor": "", "label": "Feature maps for", "children": children})
    if view["selective"]:
        entries.append({"anchor": "classes", "label": "Class selectivity", "children": []})
    if view["cards"]:
        entries.append({"anchor": "filter-cards", "label": f"Each filter ({len(view['cards'])} cards)", "children": []})
    return entries


def _layer_view(layer_report: LayerReport, pages: dict[int, str], images_by_index: dict, settings: dict,
                input_channels: int | None = 3, notes_html: str = "", free_size_words: str = "") -> dict:
    info = layer_report.info
    features = []
    gradcams = {cam.image_index: cam for cam in layer_report.gradcams}
    for position, feature in enumerate(layer_report.features):
        image = images_by_index[feature.image_index]
        cam = gradcams.get(feature.image_index)
        features.append({
            "gradcam": _asset(cam.picture) if cam else None,
            "gradcam_class": image.attribution.label if cam and image.attribution else "",
            "anchor": f"image-{position + 1}",
            "image_name": image.name,
            "image_page": paths.image_page(image.slug),
            "grid": _asset(feature.grid),
            "mean": _asset(feature.mean),
            "belt": _asset(feature.belt),
            "channels": feature.channels,
            "grid_channels": feature.grid_channels,
            "constant_channels": feature.constant_channels,
            "nonfinite_channels": feature.nonfinite_channels,
        })
    cards = _card_views(layer_report, images_by_index)
    card_pages = _card_pages(layer_report.slug, cards)
    card_links = {card["number"]: card["link"] for card in cards}
    row = _layer_row(info, pages)
    row["thumbnail"] = _asset(layer_report.thumbnail)
    row["health"] = _health_view(layer_report.health, card_links)
    view = {
        "row": row,
        "cards": cards,
        "card_pages": card_pages,
        "mosaic_tiles": _mosaic_tiles(layer_report, {card["number"]: card for card in cards}),
        "card_numbers": {"first": cards[0]["number"], "last": cards[-1]["number"]} if cards else None,
        "health": row["health"],
        "notes": Markup(notes_html),
        "page": pages[info.index],
        "facts": [
            ("Type", info.type_name),
            ("Inside sub-model", " / ".join(info.path) or "no (top level)"),
            ("Output shape", fmt_shape(info.output_shape)),
            ("Kernel shape", row["kernel_shape"]),
            ("Filters (output channels)", fmt_int(info.filters)),
            ("Unit (what is drawn and judged)", _unit_words(info, settings)),
            ("Parameters", fmt_int(info.params)),
            ("Receptive field (input pixels)", fmt_axes(info.receptive_field) or "not known"),
            *([("Built at", free_size_words)] if free_size_words else []),
            ("Effective stride (input pixels)", fmt_axes(info.effective_stride) or "not known"),
        ],
        "filters": _asset(layer_report.filters),
        "filters_rgb": _asset(layer_report.filters_rgb),
        "filters_depthwise": _asset(layer_report.filters_depthwise),
        "filter_note": layer_report.filter_note,
        "filters_shown": layer_report.filters_shown,
        "channels_shown": layer_report.channels_shown,
        "channels_total": layer_report.channels_total,
        "nonfinite_filters": layer_report.nonfinite_filters,
        "mosaic": _asset(layer_report.mosaic),
        "mosaic_filters": layer_report.mosaic_filters,
        "mosaic_dead": len(layer_report.mosaic_dead),
        "ascent_judged": layer_report.ascent_judged,
        "judge_steps": ASCENT_JUDGE_STEPS,
        "dead_rule": layer_report.health.rule if layer_report.health else "",
        "mosaic_canvas": fmt_axes(layer_report.mosaic_canvas) if layer_report.mosaic_canvas else "",
        "mosaic_channels_note": _channels_note(input_channels),
        "features": features,
        "not_drawn_reason": info.not_drawn_reason,
        "failure": layer_report.failure,
        "ascent_mode": settings["ascent_mode"],
        "ascent_recipe": _recipe_words(settings["ascent_mode"], layer_report.mosaic_canvas),
        "selective": _selective_view(layer_report, card_links),
        "select": settings["select"],
    }
    for asset in [view["filters"], view["filters_rgb"], view["filters_depthwise"]] + [f["grid"] for f in features]:
        if asset and asset["tiles"]:  # each tile of a grid links to its filter's card, on whichever page
            asset["tiles"]["cards"] = [card_links.get(number) for number in asset["tiles"]["numbers"]]
    view["contents"] = _contents(view)
    return view


RECIPE_WORDS = {
    "fast": "pixels climbed with normalised gradient steps, no transforms (the keras.io method)",
    "balanced": "a Fourier-parametrised image with decorrelated colour, seen through random shifts, scaling "
                "and rotation, climbed with Adam",
    "robust": "lucid's Fourier-parametrised image with decorrelated colour, random pad, jitter, scaling and "
              "rotation, Adam",
}


def _recipe_words(mode: str, canvas: tuple[int, int] | None) -> str:
    """How this layer's pictures were made, and why when the mode chose per layer."""
    name = recipe_name(mode, canvas) if canvas else mode
    if name != mode:
        return (f"{mode} mode, which climbs canvases of at most {SMALL_CANVAS} pixels (the first layers) the "
                f"{name} way, where it drew crisper patterns on trained models: {RECIPE_WORDS[name]}")
    return f"{mode} mode: {RECIPE_WORDS[name]}"


SELECTIVE_SHOWN = 3  # filters a class in the layer's selectivity table


def _selective_view(layer_report: LayerReport, card_links: dict[int, dict]) -> list[dict]:
    """Per class, the filters most selective for it (Morcos et al.'s index, highest first)."""
    found = layer_report.dataset
    if found is None or len(found.classes) < 2:
        return []
    rows = []
    for label, name in enumerate(found.classes):
        numbers = [n for n in range(len(found.selectivity)) if found.best_class[n] == label
                   and math.isfinite(float(found.selectivity[n]))]
        numbers.sort(key=lambda n: (-float(found.selectivity[n]), n))
        rows.append({"name": name, "filters": [
            {"number": n, "card": card_links.get(n),
             "index": f"{float(found.selectivity[n]):.2f}"} for n in numbers[:SELECTIVE_SHOWN]]})
    return rows


def _share(value: float | None) -> str:
    """A share as a whole percentage ("" where there is none)."""
    return "" if value is None or not math.isfinite(value) else f"{value:.0%}"


def _mosaic_tiles(layer_report: LayerReport, cards: dict[int, dict]) -> list[dict]:
    """The mosaic as links: each filter's ascent picture, its number and the response it reached,
    as text (burnt-in numbers were unreadable on a phone)."""
    tiles = []
    for number in layer_report.mosaic_indices:
        card = cards.get(number)
        if card is None or card["ascent"] is None:
            continue
        value = card["ascent_activation"]
        tiles.append({"number": number, "card": card["link"], "picture": card["ascent"], "dead": card["ascent_dead"],
                      "label": "NaN" if value in ("nan", "inf", "-inf") else "ascent-dead" if card["ascent_dead"] else value})
    return tiles


def _unit_words(info: LayerInfo, settings: dict) -> str:
    """The chain a filter's response is taken from, in words."""
    if not info.unit_layers:
        if settings.get("unit") == "raw":
            return f"{info.name} (its own output: --unit raw)"
        return f"{info.name} (its own output; no per-channel layer follows it alone)"
    return f"{info.unit_description} (what the next layer sees)"


def _image_view(image, input_hw: tuple[int, int] | None, layer_views: dict[int, dict] | None = None) -> dict:
    return {"name": image.name, "input_size": "×".join(map(str, input_hw[::-1])) if input_hw else "",
            "page": paths.image_page(image.slug), "original": _asset(image.original),
            "thumbnail": _asset(image.thumbnail or image.original), "model_input": _asset(image.model_input),
            "predictions": [{"label": p.label, "index": p.index, "probability": fmt_probability(p.probability)}
                            for p in image.predictions],
            "attribution": _attribution_view(image.attribution, layer_views or {}) if image.attribution else None,
            "attribution_note": image.attribution_note}


def _attribution_view(found, layer_views: dict[int, dict]) -> dict:
    """The image page's Grad-CAM and deciding units, each unit with its card's pictures when it
    has a card (a filter within --max-filters)."""
    layer = layer_views[found.gradcam.layer_index]
    units = []
    for unit in found.units:
        view = layer_views[unit.layer_index]
        card = next((c for c in view["cards"] if c["number"] == unit.number), None) if unit.has_card else None
        units.append({"layer": unit.layer_name, "layer_page": view["page"], "number": unit.number,
                      "contribution": f"{unit.contribution:.3g}", "share": f"{unit.share:.0%}",
                      "where": _asset(unit.where), "card": card, "ascent": _asset(unit.ascent)})
    return {"label": found.label, "class_index": found.class_index,
            "probability": fmt_probability(found.probability),
            "gradcam": _asset(found.gradcam.picture), "layer": layer["row"]["name"], "layer_page": layer["page"],
            "center": "x {:.2f}, y {:.2f}".format(*found.gradcam.center), "units": units}


def _pager(links: list[dict], position: int) -> dict:
    """The previous/next links of page ``position`` among ``links`` ({"name", "page"} each)."""
    return {"previous": links[position - 1] if position > 0 else None,
            "next": links[position + 1] if position + 1 < len(links) else None,
            "position": position + 1, "count": len(links)}


def _common_context(title: str, version: str, health_page: str | None = None) -> dict:
    """What base.html needs on every page: the title, the shared files, the CSP, the date."""
    return {"report_title": title, "version": version, "index_page": paths.INDEX_PAGE,
            "stylesheet": paths.STYLESHEET, "script": paths.SCRIPT, "summary_page": paths.SUMMARY_FILE,
            "csp": CONTENT_SECURITY_POLICY, "built": build_date(), "health_page": health_page}


def build_pages(report: Report) -> list[Page]:
    """(site path, template, context) for every page of the site."""
    pages = {r.info.index: paths.layer_page(r.slug) for r in report.layers}
    images_by_index = {image.index: image for image in report.images}
    layer_views = [_layer_view(r, pages, images_by_index, report.settings, report.input_channels,
                               report.notes.layer_html.get(r.info.qualified_name)
                               or report.notes.layer_html.get(r.info.name, ""),
                               size_words(report) if report.free_size else "")
                   for r in report.layers]
    views_by_index = {r.info.index: view for r, view in zip(report.layers, layer_views)}
    image_views = [_image_view(image, report.input_hw, views_by_index) for image in report.images]
    common = _common_context(report.title, report.version, paths.HEALTH_FILE)
    result = [Page(
        paths.INDEX_PAGE,
        "index.html",
        dict(
            common,
            keys=KEYS_SEARCH + KEYS_HELP,
            facts=_model_facts(report),
            all_layers=[_layer_row(info, pages) for info in report.model.layers],
            conv_layers=[view["row"] for view in layer_views],
            not_drawn=[_layer_row(info, pages) for info in report.not_drawn],
            images=image_views,
            skipped_images=[{"file": name, "reason": reason} for name, reason in report.skipped_images],
            failed_layers=[dict(_layer_row(r.info, pages), failure=r.failure) for r in report.failed_layers],
            settings=_settings_view(report),
            notes=Markup(report.notes.index_html),
        ),
    )]
    pager_links = [{"name": view["row"]["name"], "page": view["page"]} for view in layer_views]
    for position, view in enumerate(layer_views):
        keys = KEYS_PAGER + (KEYS_CARDS if view["card_numbers"] else ()) + KEYS_HELP
        card_pages = view["card_pages"] or [None]
        for card_page in card_pages:  # the layer page holds the first cards; more, their own pages
            result.append(Page(card_page["page"] if card_page else view["page"],
                               "layer.html" if card_page is card_pages[0] else "layer_cards.html",
                               dict(common, layer=view, card_page=card_page, keys=keys,
                                    **_pager(pager_links, position))))
    for image_view in image_views:
        rows = []
        for view in layer_views:
            for feature in view["features"]:
                if feature["image_page"] == image_view["page"]:
                    rows.append({"layer": view["row"], "layer_page": view["page"], "feature": feature})
        result.append(Page(image_view["page"], "image.html", dict(common, image=image_view, rows=rows, keys=KEYS_HELP)))
    return result


def _write_pages(pages: list[Page], root: str) -> list[str]:
    """Render (site path, template, context) pages into ``root``, with the static files and
    ``.nojekyll``; each page's ``url()`` makes links relative to that page."""
    env = make_environment()
    written = []
    for site_path, template_name, context in pages:

        def url(target: str, _from: str = site_path) -> str:
            return paths.relative_url(_from, target)

        html = env.get_template(template_name).render(context, url=url, page_path=site_path)
        target = os.path.join(root, *site_path.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(html)
        written.append(site_path)
    static_target = os.path.join(root, "static")
    os.makedirs(static_target, exist_ok=True)
    for source in sorted((templates_dir() / "static").iterdir()):  # one by one: a failure is a plain OSError
        if source.is_file():
            shutil.copyfile(source, os.path.join(static_target, source.name))
    for name in render.COLORMAPS:  # the colour bars' strips
        render.save_png(render.colormap_strip(name), root, colormap_file(name), "")
    Path(root, ".nojekyll").write_text("", encoding="utf-8")
    return written


def write_site(report: Report, root: str) -> list[str]:
    """Render every page into ``root``; returns the site paths written."""
    return _write_pages(build_pages(report), root)


# --------------------------------------------------------------------------- checkpoint diff


INDEX_THUMBNAIL = 64  # a picture on the diff index is shown at most this many pixels a side
INDEX_FILTERS = 5  # the most changed filters the diff index lists per layer, by kernel and by response


def _side(prefix: str, asset) -> dict | None:
    """An asset of the A or B sub-site, as seen from the diff site's root."""
    view = _asset(asset)
    if view is not None:
        view = dict(view, path=f"{prefix}/{view['path']}")
    return view


def _triple(triple) -> dict | None:
    """A and B without bars of their own (they share one, ``pair_scale``), B − A with its own."""
    if triple is None:
        return None
    return {"a": dict(_asset(triple.a), scale=None), "b": dict(_asset(triple.b), scale=None),
            "pair_scale": _scale(triple.a.scale), "delta": _asset(triple.delta)}


def _thumbnail(asset) -> dict | None:
    """A picture shown small on the diff index (the file is the one its layer page shows)."""
    if asset is None:
        return None
    shrink = INDEX_THUMBNAIL / max(asset.width, asset.height)
    scale = asset.scale
    what = "" if scale is None else f" (colour scale ±{scale.high:.3g})"
    return {"path": asset.path, "width": max(1, round(asset.width * shrink)),
            "height": max(1, round(asset.height * shrink)), "alt": asset.alt + what}


def _number(value: float | None, digits: str = ".3g") -> str:
    return "" if value is None else format(value, digits)


def _fate(number: int, diff) -> str:
    return "became dead" if number in diff.became_dead else "came alive" if number in diff.came_alive else ""


def _filter_link(change, value: float | None) -> dict:
    return {"number": change.number, "anchor": paths.filter_anchor(change.number), "change": _number(value, ".2g")}


def _diff_rows(diffs) -> list[dict]:
    """The index's rows, most changed responses first, each with its rank by kernel change too
    (no rank, and no picture, for a layer where nothing changed: a rank among ties means nothing)."""
    kernel_rank = {diff.slug: rank for rank, diff in enumerate(ranked_layers(diffs), 1)}
    rows = []
    for rank, diff in enumerate(ranked_by_response(diffs), 1):
        kernel_thumb, response_thumb = diff.thumbnails
        rows.append({
            "name": diff.info.qualified_name, "type": diff.info.type_name, "page": paths.layer_page(diff.slug),
            "filters": len(diff.changes), "kernel_change": _number(diff.mean_change),
            "kernel_rank": kernel_rank[diff.slug] if diff.changed else None, "kernel_changed": len(diff.changed),
            "response_change": _number(diff.response_change),
            "response_rank": rank if diff.response_changed else None,
            "kernel_thumb": _thumbnail(kernel_thumb),
            "response_thumb": _thumbnail(response_thumb),
            "top": [_filter_link(c, c.relative_l2) for c in diff.changed[:INDEX_FILTERS]],
            "top_responses": [_filter_link(c, c.response_change) for c in diff.response_ranked[:INDEX_FILTERS]],
            "became_dead": diff.became_dead, "came_alive": diff.came_alive})
    return rows


def _filter_row(change, diff) -> dict:
    card = f"{paths.layer_page(diff.slug)}#{paths.filter_anchor(change.number)}"
    return {"number": change.number, "anchor": paths.filter_anchor(change.number),
            "change": _number(change.relative_l2), "cosine": _number(change.cosine, ".3f"),
            "response_change": _number(change.response_change), "kernel_changed": change.kernel_changed,
            "response_changed": change.response_changed, "fate": _fate(change.number, diff),
            "a_card": f"a/{card}", "b_card": f"b/{card}"}


def _diff_layer_view(diff, report_a_layer, report_b_layer) -> dict:
    rows = {change.number: _filter_row(change, diff) for change in diff.changes}
    cards = [dict(rows[pictures.number], kernel_pictures=_triple(pictures.kernel),
                  map_pictures=_triple(pictures.response), map_image=pictures.response_image)
             for pictures in diff.filter_pictures]
    with_card = {pictures.number for pictures in diff.filter_pictures}
    return {
        "top": [rows[c.number] for c in diff.changed[:RANKED_FILTERS]],
        "top_responses": [rows[c.number] for c in diff.response_ranked[:RANKED_FILTERS]],
        "cards": cards,
        "every_filter": [dict(rows[number], has_card=number in with_card) for number in sorted(rows)],
        "grids": _triple(diff.filter_grids),
        "mosaics": {"a": _side("a", report_a_layer.mosaic), "b": _side("b", report_b_layer.mosaic)},
        "per_image": [{"name": image.name, "grids": _triple(image.grids), "mean": _asset(image.mean_difference),
                       "response_change": _number(image.response_change)} for image in diff.images],
    }


def _decision_view(change) -> dict:
    """One image's explanation in A and B, its pictures from the two sites (``a/``, ``b/``)."""
    def side(prefix: str, found) -> dict:
        picture = _asset(found.gradcam.picture)
        picture["path"] = f"{prefix}/{picture['path']}"
        return {"label": found.label, "probability": fmt_probability(found.probability), "gradcam": picture,
                "page": f"{prefix}/{paths.image_page(change.image.slug)}",
                "units": [f"{unit.layer_name} #{unit.number}" for unit in found.units[:3]]}

    return {"image": change.image.name, "a": side("a", change.a), "b": side("b", change.b),
            "changed": change.class_changed, "moved": f"{change.center_shift:.2f}",
            "similarity": f"{change.map_similarity:.2f}",
            "shared": f"{len(change.shared_units)} of {len(change.a.units)}"}


def write_diff_site(diff_report: DiffReport, root: str) -> None:
    """index.html and one page per conv layer comparing A (``a/``) and B (``b/``)."""
    diffs, report_a = diff_report.layers, diff_report.a
    reports_b = {r.info.qualified_name: r for r in diff_report.b.layers}
    names = {"a": diff_report.a_name, "b": diff_report.b_name}
    common = dict(_common_context(f"Diff: {os.path.basename(names['a'])} → {os.path.basename(names['b'])}",
                                  report_a.version), names=names)
    rows = _diff_rows(diffs)
    measured = any(diff.response_change is not None for diff in diffs)
    pages = [Page(paths.INDEX_PAGE, "diff_index.html", dict(
        common, layers=rows, measured=measured, keys=KEYS_HELP, sites={"a": "a/index.html", "b": "b/index.html"},
        decisions=[_decision_view(change) for change in diff_report.decisions]))]
    rows_by_page = {row["page"]: row for row in rows}
    pager_links = [{"name": diff.info.name, "page": paths.layer_page(diff.slug)} for diff in diffs]
    for position, (diff, report_a_layer) in enumerate(zip(diffs, report_a.layers)):
        page = paths.layer_page(diff.slug)
        view = _diff_layer_view(diff, report_a_layer, reports_b[diff.info.qualified_name])
        pages.append(Page(page, "diff_layer.html", dict(common, row=rows_by_page[page], measured=measured, **view,
                                                        keys=KEYS_PAGER + KEYS_HELP, **_pager(pager_links, position))))
    _write_pages(pages, root)


# --------------------------------------------------------------------------- gallery


GALLERY_TILES = 4  # mosaic thumbnails on a model's card, from its first to its last drawn layer


def gallery_health(report: Report) -> list[str]:
    """A model's health in a few numbers, as its own pages count them."""
    layers = [layer for layer in report.layers if layer.health is not None]
    total = sum(layer.health.filters for layer in layers)
    words = []
    if report.images:
        dead = sum(len(layer.health.dead) for layer in layers)
        words.append(f"{fmt_int(dead)} of {fmt_int(total)} filters dead on the {len(report.images)} image(s)")
    tried = sum(layer.mosaic_filters for layer in report.layers if layer.ascent_judged)
    if tried:
        ascent_dead = sum(len(layer.health.ascent_dead) for layer in layers)
        words.append(f"{fmt_int(ascent_dead)} of {fmt_int(tried)} ascent-dead")
    duplicates = sum(len(layer.health.kernel.duplicates) for layer in layers)
    nonfinite = sum(len(layer.health.kernel.nonfinite) for layer in layers)
    words.append(f"{fmt_int(duplicates)} duplicate kernel(s)")
    if nonfinite:
        words.append(f"{fmt_int(nonfinite)} kernel(s) with NaN or Inf")
    if report.failed_layers:
        words.append(f"{len(report.failed_layers)} layer(s) not drawn")
    return words


def _spread(items: list, count: int) -> list:
    """``count`` items from first to last, evenly spaced."""
    if len(items) <= count:
        return items
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)]


def _gallery_card(slug: str, report: Report) -> dict:
    model = report.model
    drawn = [layer for layer in report.layers if layer.thumbnail is not None and layer.failure is None]
    tiles = [dict(_asset(layer.thumbnail), path=f"{slug}/{layer.thumbnail.path}", name=layer.info.name,
                  page=f"{slug}/{paths.layer_page(layer.slug)}") for layer in _spread(drawn, GALLERY_TILES)]
    return {"name": report.model_name, "page": f"{slug}/{paths.INDEX_PAGE}", "tiles": tiles,
            "summary": f"{slug}/{paths.SUMMARY_FILE}", "health_csv": f"{slug}/{paths.HEALTH_FILE}",
            "facts": [("Parameters", fmt_int(model.total_params)),
                      ("Convolution layers", f"{fmt_int(len(model.conv_layers))}, {len(report.layers)} drawn"),
                      ("Input", fmt_shape(model.input_shape)), ("Weights", report.weights)],
            "health": gallery_health(report)}


def write_gallery_site(title: str, models: list[tuple[str, Report]], root: str,
                       input_size: tuple[int, int] | None = None, size_not_taken: list[Report] = ()) -> None:
    """The gallery's index.html (a card per model, linking into its report) and static files;
    with the ``input_size`` asked for, the models that did not take it (built at their own)."""
    context = dict(_common_context(title, models[0][1].version if models else ""), keys=KEYS_HELP,
                   models=[_gallery_card(slug, report) for slug, report in models],
                   input_size=" × ".join(map(str, input_size)) if input_size else "",
                   size_not_taken=[(r.model_name, " × ".join(map(str, r.input_hw))) for r in size_not_taken])
    _write_pages([Page(paths.INDEX_PAGE, "gallery.html", context)], root)
