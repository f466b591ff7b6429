"""A checkpoint diff's pages from its records: the index ranking the layers by change, and a
page per conv layer setting A, B and B − A side by side (A's and B's own sites are under a/ and b/).
"""

from __future__ import annotations

import os

from .. import paths
from ..diff_records import RANKED_FILTERS, DiffReport, ranked_by_response, ranked_layers
from ..formatting import fmt_probability
from .common import KEYS_HELP, KEYS_PAGER, Page, _asset, _common_context, _pager, _scale, _write_pages


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
