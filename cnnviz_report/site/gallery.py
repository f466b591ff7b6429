"""A gallery's index from its models' reports: a card per model with its size, a few mosaic
tiles and its health in numbers, each linking into the model's own report."""

from __future__ import annotations

from .. import paths
from ..formatting import fmt_int, fmt_shape
from ..records import Report
from .common import KEYS_HELP, Page, _asset, _common_context, _write_pages


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
                       input_size: tuple[int, int] | None = None, size_not_taken: tuple[Report, ...] = ()) -> None:
    """The gallery's index.html (a card per model, linking into its report) and static files;
    with the ``input_size`` asked for, the models that did not take it (built at their own)."""
    context = dict(_common_context(title, models[0][1].version if models else ""), keys=KEYS_HELP,
                   models=[_gallery_card(slug, report) for slug, report in models],
                   input_size=" × ".join(map(str, input_size)) if input_size else "",
                   size_not_taken=[(r.model_name, " × ".join(map(str, r.input_hw))) for r in size_not_taken])
    _write_pages([Page(paths.INDEX_PAGE, "gallery.html", context)], root)
