"""A report's pages from its records: the index, a page (or several) per drawn layer with its
cards, and a page per image. View-models are plain dicts made here; templates only loop and print.
"""

from __future__ import annotations

import math
from typing import Callable

from markupsafe import Markup

from .. import paths
from ..ascent_rules import SMALL_CANVAS, recipe_name
from ..config import MOSAIC_FILTERS
from ..formatting import fmt_axes, fmt_int, fmt_probability, fmt_shape, preprocess_words
from ..health import ASCENT_JUDGE_STEPS, BADGE_LABELS
from ..layers import LayerInfo
from ..records import BuildState, FilterCard, LayerReport, Report
from .common import (KEYS_CARDS, KEYS_HELP, KEYS_PAGER, KEYS_SEARCH, Page, _asset, _common_context, _pager,
                     _write_pages)


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


PRECISION_WORDS = {  # what the ascent steps computed in (mosaics.ascent_precision); float32 goes without saying
    "mixed": "; steps in bfloat16 for the layers whose convolutions gain from this CPU's bfloat16 matrix units "
             "(AMX), float32 for the others; responses and verdicts measured in float32",
    "bfloat16": "; steps in bfloat16 (--precision bfloat16); responses and verdicts measured in float32",
}


def _settings_view(report: Report) -> list[tuple[str, str]]:
    """The build's settings in words, with the values actually used (not ``None`` for defaults)."""
    s = report.settings
    ascent = "off (--ascent-steps 0)" if not s["ascent_steps"] else (
        f"{s['ascent_mode']} mode, {s['ascent_steps']} steps, step size {s['ascent_learning_rate']:g}, seed {s['seed']}; "
        + ("the most activated filters" if s["select"] == "top" else "the first filters")
        + PRECISION_WORDS.get(s.get("ascent_precision"), ""))
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
        *([("Backend", _backend_words(s["backend"]))] if s.get("backend") else []),
        ("Input size", "×".join(map(str, s["input_size"])) if s["input_size"] else "the model's own"),
        ("Preprocessing", ("auto: " if s["preprocess"] == "auto" else "") + preprocess_words(report.preprocess)
         + (f"; {report.preprocess_reason}" if report.preprocess_reason else "")),
        ("Unreadable images and failing layers", "skipped (--keep-going)" if s["keep_going"] else "stop the build"),
        ("Reviewer's notes", s["notes"] or "none"),
        ("Single-file report", s["single_file"] or "none"),
    ]


def _backend_words(backend: str) -> str:
    """"tensorflow on cpu" -> "Keras's tensorflow backend, on cpu"."""
    name, _, device = backend.partition(" on ")
    return f"Keras's {name} backend, on {device}" if device else f"Keras's {name} backend"


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


def _card_views(layer_report: LayerReport, images_by_index: dict, pending: dict[str, str]) -> list[dict]:
    """Each card's numbers and pictures; ``pending`` says which of its parts are still being drawn."""
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
            "ascent_pending": pending["ascent"] if card.ascent is None else "",
            "examples_pending": pending["examples"],
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
    anchor its links go to): per page its site path, its cards, their numbers' range, the runs of
    consecutive numbers it holds (a page's range has gaps where cards of numbers only follow the
    drawn ones: "go to filter" must know which numbers have a card) and its card filter's choices."""
    pages = []
    for page, start in enumerate(range(0, len(cards), paths.CARDS_PER_PAGE)):
        chunk = cards[start : start + paths.CARDS_PER_PAGE]
        runs: list[list[int]] = []
        for card in chunk:
            card["link"] = {"page": paths.card_page(slug, page), "anchor": card["anchor"]}
            if runs and card["number"] == runs[-1][1] + 1:
                runs[-1][1] = card["number"]
            else:
                runs.append([card["number"], card["number"]])
        pages.append({"page": paths.card_page(slug, page), "number": page + 1, "cards": chunk,
                      "first": chunk[0]["number"], "last": chunk[-1]["number"], "runs": runs,
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
    if view["mosaic"] or view["ascent_pending"]:
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
                input_channels: int | None = 3, notes_html: str = "", free_size_words: str = "",
                state: BuildState | None = None) -> dict:
    """The layer page's view; ``state`` (a build still going on, or stopped) says which of its
    pictures are not drawn yet."""
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
    waits = state is not None and state.layer_waits(info.index)
    pending = {"ascent": state.words if waits else "",
               "examples": state.words if state is not None and state.examples_waiting else ""}
    cards = _card_views(layer_report, images_by_index, pending)
    card_pages = _card_pages(layer_report.slug, cards)
    card_links = {card["number"]: card["link"] for card in cards}
    row = _layer_row(info, pages)
    row["thumbnail"] = _asset(layer_report.thumbnail)
    row["health"] = _health_view(layer_report.health, card_links)
    row["pending"] = ("ascent pictures " + pending["ascent"].split(":")[0]) if waits else ""
    view = {
        "row": row,
        "stage": None,  # build_pages adds the stage's links
        "filters_total": info.filters or 0,
        "cards": cards,
        "card_pages": card_pages,
        "mosaic_tiles": _mosaic_tiles(layer_report, {card["number"]: card for card in cards}),
        "card_numbers": {"first": cards[0]["number"], "last": cards[-1]["number"],
                         "filters": info.filters or cards[-1]["number"] + 1,  # "go to filter" takes every number
                         "drawn": layer_report.filters_shown} if cards else None,
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
        "ascent_pending": pending["ascent"],
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


def _image_view(image, input_hw: tuple[int, int] | None, layer_views: dict[int, dict] | None = None,
                state: BuildState | None = None) -> dict:
    return {"name": image.name, "input_size": "×".join(map(str, input_hw[::-1])) if input_hw else "",
            "page": paths.image_page(image.slug), "original": _asset(image.original),
            "thumbnail": _asset(image.thumbnail or image.original), "model_input": _asset(image.model_input),
            "predictions": [{"label": p.label, "index": p.index, "probability": fmt_probability(p.probability)}
                            for p in image.predictions],
            "attribution": _attribution_view(image.attribution, layer_views or {}) if image.attribution else None,
            "attribution_note": image.attribution_note,
            "explanations_pending": state.words if state is not None and state.explanations_waiting else ""}


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
    return {"label": found.label, "class_index": found.class_index, "score": found.score,
            "probability": fmt_probability(found.probability),
            "gradcam": _asset(found.gradcam.picture), "layer": layer["row"]["name"], "layer_page": layer["page"],
            "center": "x {:.2f}, y {:.2f}".format(*found.gradcam.center), "units": units}


def _state_view(report: Report) -> dict | None:
    """The index's banner for a report published before its build ended: how far it got, what is
    not drawn, and how to finish it."""
    state = report.state
    if state is None:
        return None
    climbed = [r for r in report.layers if r.mosaic is not None or state.layer_waits(r.info.index)]
    waiting = sum(1 for r in report.layers if state.layer_waits(r.info.index))
    parts = ([f"the gradient-ascent pictures of {waiting} of {len(climbed)} layers"] if waiting else []) + \
        (["the data-set examples"] if state.examples_waiting else []) + \
        (["each image's Grad-CAM and deciding units"] if state.explanations_waiting else [])
    return {"stopped": bool(state.stopped), "words": state.words, "parts": parts,
            "drawn": len(climbed) - waiting, "climbed": len(climbed)}


def _stage_sections(report: Report, views_by_index: dict[int, dict]) -> list[dict]:
    """The index's conv layers by stage: each heading with its resolution, receptive field and
    counts; a stage whose kept layers --per-stage last found all 1x1 says so."""
    sections = []
    for stage in report.stages.stages:
        drawn = [views_by_index[index] for index in stage.layers if index in views_by_index]
        if not drawn and stage.name not in report.unpicked_stages:
            continue
        health = [view["row"]["health"] for view in drawn]
        counts = {key: sum(badge["count"] for h in health for badge in h["badges"] if badge["key"] == key)
                  for key in ("dead", "ascent_dead")}
        field = stage.receptive_field
        facts = [stage.resolution] if stage.resolution != stage.name else []
        if field:
            facts.append(f"receptive field {_span(field)} px")
        total = len(stage.layers)
        facts.append(f"{len(drawn)} of {total} conv layers drawn" if len(drawn) < total
                     else f"{total} conv layer{'s' if total != 1 else ''}")
        if drawn:
            facts.append(f"{fmt_int(sum(view['filters_total'] for view in drawn))} filters")
            facts += [f"{counts[key]} {BADGE_LABELS[key]}" for key in ("dead", "ascent_dead") if counts[key]]
            waiting = sum(1 for view in drawn if view["ascent_pending"])
            if waiting:  # their ascent-dead filters are not counted yet
                facts.append(f"ascent pictures of {waiting} layer{'s' if waiting != 1 else ''} not drawn yet")
        sections.append({
            "anchor": stage.slug, "name": stage.name, "facts": facts, "rows": [view["row"] for view in drawn],
            "note": "" if drawn else "No layer drawn: the layers kept here are all 1x1 convs, which "
                                     "--per-stage last skips.",
        })
    return sections


def _span(low_high: tuple) -> str:
    low, high = (fmt_axes((value,)) for value in low_high)
    return low if low == high else f"{low}-{high}"


def _stage_links(report: Report, views_by_index: dict[int, dict]) -> dict[int, dict]:
    """Per drawn layer: its stage, the index's anchor for it, and the previous and next layer drawn
    in the same stage."""
    links = {}
    for stage in report.stages.stages:
        drawn = [index for index in stage.layers if index in views_by_index]
        for position, index in enumerate(drawn):
            neighbours = [views_by_index[drawn[p]] if 0 <= p < len(drawn) else None
                          for p in (position - 1, position + 1)]
            links[index] = {
                "name": stage.name, "anchor": stage.slug, "resolution": stage.resolution,
                "position": position + 1, "count": len(drawn),
                "previous": {"name": neighbours[0]["row"]["name"], "page": neighbours[0]["page"]} if neighbours[0] else None,
                "next": {"name": neighbours[1]["row"]["name"], "page": neighbours[1]["page"]} if neighbours[1] else None,
            }
    return links


def build_pages(report: Report) -> list[Page]:
    """(site path, template, context) for every page of the site."""
    pages = {r.info.index: paths.layer_page(r.slug) for r in report.layers}
    images_by_index = {image.index: image for image in report.images}
    layer_views = [_layer_view(r, pages, images_by_index, report.settings, report.input_channels,
                               report.notes.layer_html.get(r.info.qualified_name)
                               or report.notes.layer_html.get(r.info.name, ""),
                               size_words(report) if report.free_size else "", report.state)
                   for r in report.layers]
    views_by_index = {r.info.index: view for r, view in zip(report.layers, layer_views)}
    for index, stage in _stage_links(report, views_by_index).items():
        views_by_index[index]["stage"] = stage
    image_views = [_image_view(image, report.input_hw, views_by_index, report.state) for image in report.images]
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
            stages=_stage_sections(report, views_by_index),
            stage_rule=report.stages.rule,
            not_drawn=[_layer_row(info, pages) for info in report.not_drawn],
            images=image_views,
            skipped_images=[{"file": name, "reason": reason} for name, reason in report.skipped_images],
            failed_layers=[dict(_layer_row(r.info, pages), failure=r.failure) for r in report.failed_layers],
            settings=_settings_view(report),
            notes=Markup(report.notes.index_html),
            state=_state_view(report),
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


def write_site(report: Report, root: str, only: Callable[[str], bool] | None = None) -> list[str]:
    """Render every page into ``root`` (or those whose site path ``only`` accepts, without the
    static files: a streamed build's update); returns the site paths written."""
    pages = build_pages(report)
    if only is None:
        return _write_pages(pages, root)
    return _write_pages([page for page in pages if only(page.path)], root, static=False)
