"""Report records -> ``summary.md`` (GitHub-flavoured Markdown for a review thread) and
``health.csv`` (one row per filter). Names are user data, so they are escaped for Markdown.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re

from . import paths
from .formatting import fmt_axes, fmt_int, fmt_probability, fmt_shape
from .health import ASCENT_JUDGE_STEPS
from .diff_records import DiffReport, ranked_by_response, ranked_layers
from .records import Report

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~])")  # what can start markup anywhere in a line


def md_text(text: str) -> str:
    """``text`` shown literally in Markdown (also inside a table cell): HTML and Markdown escaped."""
    text = " ".join(str(text).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def md_link(text: str, target: str) -> str:
    return f"[{md_text(text)}]({target.replace(' ', '%20').replace('(', '%28').replace(')', '%29')})"


def summary_markdown(report: Report) -> str:
    model = report.model
    lines = [f"# {md_text(report.title)}", ""]
    if report.state is not None:
        lines += [f"**Not finished:** some pictures and verdicts are {md_text(report.state.words)}; the cells of "
                  "what is not drawn say so.", ""]
    lines += [
        f"**Model:** {md_text(report.model_name)} ({md_text(report.model_source)}, weights: {md_text(report.weights)})  ",
        f"**Input:** {md_text(fmt_shape(model.input_shape))}, preprocessing {md_text(report.preprocess)}  ",
        f"**Parameters:** {fmt_int(model.total_params)} ({fmt_int(model.trainable_params)} trainable, "
        f"{fmt_int(model.non_trainable_params)} non-trainable)  ",
        f"**Layers:** {len(model.layers)}, of which {len(model.conv_layers)} convolution layers  ",
        f"**Images:** {len(report.images)}"
        + (f" ({', '.join(md_link(i.name, paths.image_page(i.slug)) for i in report.images[:10])}"
           f"{', ...' if len(report.images) > 10 else ''})" if report.images else ""),
        "",
        f"Open the report: {md_link('index.html', paths.INDEX_PAGE)}. Per-filter numbers: "
        f"{md_link('health.csv', paths.HEALTH_FILE)}.",
        "",
        "| # | Layer | Type | Output | Kernel | Filters | RF | Dead | Constant | Duplicates | NaN/Inf | Ascent-dead |",
        "|--:|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    images = len(report.images)
    for layer in report.layers:
        info, health = layer.info, layer.health
        counts = health.counts if health else {}
        on_images = (lambda key: str(counts.get(key, 0))) if images else (lambda key: "–")
        tried = (("not judged" if not layer.ascent_judged else f"{counts.get('ascent_dead', 0)}/{layer.mosaic_filters}")
                 if layer.mosaic_filters else "–")
        if report.state is not None and report.state.layer_waits(info.index):
            tried = "not drawn yet"
        kernel = fmt_shape(info.kernel_shape) + (f" + {fmt_shape(info.pointwise_shape)}" if info.pointwise_shape else "")
        lines.append(
            f"| {info.index} | {md_link(info.qualified_name, paths.layer_page(layer.slug))} | {md_text(info.type_name)} "
            f"| {md_text(fmt_shape(info.output_shape))} | {md_text(kernel)} | {fmt_int(info.filters)} "
            f"| {md_text(fmt_axes(info.receptive_field))} | {on_images('dead')} | {on_images('constant')} "
            f"| {counts.get('duplicates', 0)} | {counts.get('nonfinite', 0)} | {tried} |")
    lines += [
        "",
        "Each filter is judged on its unit's response: the conv's output after the BatchNormalization and "
        "activation layers that follow it alone (what the next layer sees; `--unit raw` judges the conv's own "
        "output). Dead: the response sits at its activation's floor everywhere on every image (a unit with no "
        "floor, such as a linear projection or a PReLU, is never dead); constant: one value everywhere on every "
        "image; duplicates: kernel within cosine 0.98 of an earlier filter's that reads the same inputs (a depthwise "
        "filter is compared only with the filters of its input channel, a grouped conv's within its group); "
        "ascent-dead: of the filters given "
        f"a gradient-ascent picture, those whose response stayed at its floor ({ASCENT_JUDGE_STEPS} steps or more "
        "needed to judge)."
        + ("" if images else " Dead and constant need images (`--images`)."),
    ]
    lines += _decisions(report)
    if report.failed_layers:
        lines += ["", f"**{len(report.failed_layers)} layer(s) could not be drawn** and were left out: "
                  + "; ".join(f"{md_link(layer.info.qualified_name, paths.layer_page(layer.slug))} "
                              f"({md_text(layer.info.type_name)}): {md_text(layer.failure)}"
                              for layer in report.failed_layers)]
    if report.skipped_images:
        lines += ["", f"**{len(report.skipped_images)} image(s) could not be read** and were skipped: "
                  + ", ".join(md_text(name) for name, _ in report.skipped_images)]
    lines += ["", f"<sub>cnnviz_report {md_text(report.version)}</sub>", ""]
    return "\n".join(lines)


def _decisions(report: Report) -> list[str]:
    """Each image's explained class and its three strongest units (attribution.json has them all)."""
    explained = [image for image in report.images if image.attribution]
    if not explained:
        return []
    lines = ["", "## Why the model said it", "",
             f"Per image, the class explained, the Grad-CAM centre at the last conv layer (x, y as fractions of "
             f"the input) and the three units adding most to the class score; all in "
             f"{md_link('attribution.json', paths.ATTRIBUTION_FILE)}.", "",
             "| Image | Class | Probability | Grad-CAM centre | Strongest units |", "|---|---|--:|---|---|"]
    for image in explained:
        found = image.attribution
        units = ", ".join(f"{md_text(unit.layer_name)} #{unit.number} ({unit.share:.0%})" for unit in found.units[:3])
        x, y = found.gradcam.center
        lines.append(f"| {md_link(image.name, paths.image_page(image.slug))} | {md_text(found.label)} "
                     f"| {fmt_probability(found.probability, '–')} | {x:.2f}, {y:.2f} | {units} |")
    if any(image.attribution.score for image in explained):
        lines += ["", "The model's one output unit is read as a binary classifier: class 1's probability is p (the "
                  "sigmoid of the logit), class 0's 1 − p; class 1 is explained by the logit, class 0 by its negative."]
    return lines


def _number(value: float, digits: int) -> float | None:
    """``value`` rounded, or None (JSON's null) where a model with NaN weights gave no number."""
    return round(float(value), digits) if math.isfinite(value) else None


def attribution_data(report: Report) -> dict:
    """attribution.json's content: per image its top classes, its Grad-CAM and its deciding units
    (a number the model did not give, NaN, is null)."""
    images = []
    for image in report.images:
        entry = {"image": image.name,
                 "top": [{"class": p.index, "label": p.label, "probability": _number(p.probability, 6)}
                         for p in image.predictions]}
        found = image.attribution
        if found is not None:
            layer = next(layer.info.qualified_name for layer in report.layers
                         if layer.info.index == found.gradcam.layer_index)
            entry["gradcam"] = {"layer": layer, "class": found.class_index, "label": found.label,
                                "center": [_number(v, 4) for v in found.gradcam.center]}
            if found.score:  # a one-unit binary classifier: the score explained, "logit" or "-logit"
                entry["gradcam"]["score"] = found.score
            entry["units"] = [{"layer": unit.layer_name, "filter": unit.number,
                               "contribution": float(f"{unit.contribution:.6g}") if math.isfinite(unit.contribution)
                               else None, "share": _number(unit.share, 4)}
                              for unit in found.units]
        elif image.attribution_note:
            entry["note"] = image.attribution_note
        images.append(entry)
    return {"images": images}


def attribution_json(report: Report) -> str:
    return json.dumps(attribution_data(report), indent=1, allow_nan=False) + "\n"


def gallery_summary(title: str, models: list[tuple[str, Report]]) -> str:
    """The gallery's summary.md: a row per model, linking to its report and its own summary.md."""
    from .site import gallery_health

    lines = [f"# {md_text(title)}", "", "| Model | Parameters | Conv layers | Drawn | Weights | Health |",
             "|---|--:|--:|--:|---|---|"]
    for slug, report in models:
        lines.append(f"| {md_link(report.model_name, f'{slug}/{paths.INDEX_PAGE}')} "
                     f"| {fmt_int(report.model.total_params)} | {len(report.model.conv_layers)} | {len(report.layers)} "
                     f"| {md_text(report.weights)} | {md_text('; '.join(gallery_health(report)))} "
                     f"({md_link('summary.md', f'{slug}/{paths.SUMMARY_FILE}')}) |")
    versions = sorted({report.version for _, report in models})
    lines += ["", f"<sub>cnnviz_report {md_text(', '.join(versions))}</sub>", ""]
    return "\n".join(lines)


HEALTH_COLUMNS = ("layer", "filter", "kernel_norm", "nonfinite_kernel", "duplicate_of", "cosine", "norm_outlier",
                  "dead_on_images", "constant_on_images", "ascent_dead", "ascent_activation",
                  "ascent_transformed", "ascent_kept", "ascent_high_frequency",
                  "mean_activation", "max_activation", "active_share", "images",
                  "dataset_top", "dataset_top_image", "dataset_class", "dataset_selectivity", "not_drawn")


def health_csv(report: Report) -> str:
    """One row per filter of every drawn layer; empty cells where a number was not measured, and
    in ``not_drawn`` what a build still going on (or stopped) has not drawn for that filter."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEALTH_COLUMNS)
    for layer in report.layers:
        health = layer.health
        if health is None:
            continue
        kernel = health.kernel
        duplicate = {f: (earlier, cosine) for f, earlier, cosine in kernel.duplicates}
        ascent = {card.number: card.ascent_quality for card in layer.cards if card.ascent_quality is not None}
        stats, images = layer.stats, layer.images_measured
        not_drawn = _not_drawn(report.state, layer)
        for number in range(health.filters):
            earlier, cosine = duplicate.get(number, ("", ""))
            measured = images and number < stats.max.shape[1]
            row = [
                _cell(layer.info.qualified_name), number, _num(kernel.norms[number]), int(number in kernel.nonfinite),
                earlier, cosine, int(number in kernel.norm_outliers),
                int(number in health.dead) if images else "", int(number in health.constant) if images else "",
                int(number in health.ascent_dead) if number in layer.mosaic_indices and layer.ascent_judged else "",
                *_quality_cells(ascent.get(number)),
                _num(stats.mean[:, number].mean()) if measured else "",
                _num(stats.max[:, number].max()) if measured else "",
                _num(stats.active[:, number].mean()) if measured else "",
                images,
                *_dataset_cells(layer.dataset, number),
                not_drawn,
            ]
            writer.writerow(row)
    return out.getvalue()


def _not_drawn(state, layer) -> str:
    """``ascent, dataset examples being drawn: about 3 min left at 21:15 UTC``, or ""."""
    if state is None:
        return ""
    parts = (["ascent"] if state.layer_waits(layer.info.index) else []) + \
        (["dataset examples"] if state.examples_waiting else [])
    return f"{', '.join(parts)} {state.words}" if parts else ""


def _dataset_cells(found, number: int) -> list[str]:
    """dataset_top, dataset_top_image, dataset_class, dataset_selectivity (empty: no --dataset)."""
    if found is None or number >= len(found.top) or not found.top_name[number]:
        return ["", "", "", ""]
    label = found.classes[found.best_class[number]] if found.classes and found.best_class[number] >= 0 else ""
    index = float(found.selectivity[number])
    return [_num(found.top[number]), _cell(found.top_name[number]), _cell(label),
            "" if index != index else _num(index)]  # NaN: not defined


def _quality_cells(quality) -> list[str]:
    """ascent_activation, ascent_transformed, ascent_kept, ascent_high_frequency (empty: no picture)."""
    if quality is None:
        return ["", "", "", ""]
    return [_num(quality.activation), _num(quality.transformed), _num(quality.kept), _num(quality.high_frequency)]


def _cell(text: str) -> str:
    """A name as a CSV cell a spreadsheet will not run as a formula (=, +, -, @ first)."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _num(value) -> str:
    return "" if value is None else f"{float(value):.6g}"


def _ranked(value: float | None, rank: int, changed: bool) -> str:
    """A change with its rank ("0.18 (#1)"); no rank where nothing changed (a rank among ties says nothing)."""
    if value is None:
        return "–"
    return f"{value:.3g} (#{rank})" if changed else f"{value:.3g}"


def diff_summary(diff: DiffReport) -> str:
    """Markdown for the review thread: the layers whose responses changed most (a layer downstream
    of a change shows although its kernels did not change), their kernel change, the most changed
    filters, with links."""
    measured = any(layer.response_change is not None for layer in diff.layers)
    kernel_rank = {layer.slug: rank for rank, layer in enumerate(ranked_layers(diff.layers), 1)}
    lines = [f"# Checkpoint diff: {md_text(os.path.basename(diff.a_name))} → {md_text(os.path.basename(diff.b_name))}",
             "", f"Open the comparison: {md_link('index.html', paths.INDEX_PAGE)}.", "",
             "| Layer | Response change | Mean change | Most changed filters | Became dead | Came alive |",
             "|---|--:|--:|---|---|---|"]
    for rank, layer in enumerate(ranked_by_response(diff.layers), 1):
        top = ", ".join(md_link(f"{c.number} ({c.relative_l2:.2g})", f"{paths.layer_page(layer.slug)}#"
                                f"{paths.filter_anchor(c.number)}") for c in layer.changed[:5]) or "unchanged"
        lines.append(f"| {md_link(layer.info.qualified_name, paths.layer_page(layer.slug))} "
                     f"| {_ranked(layer.response_change, rank, layer.response_changed)} "
                     f"| {_ranked(layer.mean_change, kernel_rank[layer.slug], bool(layer.changed))} | {top} | "
                     f"{', '.join(map(str, layer.became_dead)) or '–'} | {', '.join(map(str, layer.came_alive)) or '–'} |")
    lines += ["", "Mean change: of the layer's filters' kernels, relative L2 distance ||B − A|| / ||A||. "
              + ("Response change: relative L2 distance of the layer's feature maps on the same images, mean over "
                 "the images; layers are listed by it, most changed first." if measured else
                 "Response change needs images (`--images`); layers are listed by mean change."), ""]
    lines += _decision_changes(diff)
    return "\n".join(lines)


def _units_words(found) -> str:
    return ", ".join(f"{md_text(unit.layer_name)} #{unit.number}" for unit in found.units[:3])


def _decision_changes(diff: DiffReport) -> list[str]:
    """Per image: A's and B's class, how far the Grad-CAM moved and how alike it stayed, the top units."""
    if not diff.decisions:
        return []
    lines = ["## Why each model said it", "",
             "| Image | A: class | B: class | Grad-CAM moved | Grad-CAM similarity | A's top units | B's top units |",
             "|---|---|---|--:|--:|---|---|"]
    for change in diff.decisions:
        a, b = change.a, change.b
        mark = " **(changed)**" if change.class_changed else ""
        lines.append(f"| {md_link(change.image.name, 'a/' + paths.image_page(change.image.slug))} "
                     f"| {md_text(a.label)} ({fmt_probability(a.probability, '–')}) "
                     f"| {md_text(b.label)} ({fmt_probability(b.probability, '–')}){mark} "
                     f"| {change.center_shift:.2f} | {change.map_similarity:.2f} | {_units_words(a)} "
                     f"| {_units_words(b)} |")
    lines += ["", "Grad-CAM at the last conv layer: moved is the distance between the centres of mass (in input "
              "widths and heights); similarity the cosine of the two maps (1: the same place). Units: activation x "
              "gradient of the class score, strongest first.", ""]
    return lines

