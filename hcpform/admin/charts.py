"""Charts as inline, accessible SVG drawn by pygal on the server: no script, no inline style.

pygal writes a <script> (its tooltips) and a <style> into every chart; both are taken out, as
are its comments, the tooltip layer and its per-point <desc> notes: the admin's CSP allows
neither inline script nor inline style, and the page must work with JS off. The look comes
from static/css/charts.css instead. Each chart is role="img" named by its <title> and
described by a <desc>; the numbers themselves are in the data table the page shows below it.
"""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from typing import Any

import pygal
from markupsafe import Markup
from pygal.style import Style

WIDTH, HEIGHT = 800, 360
# Text sizes here must match static/css/charts.css: pygal places labels by them.
STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#0b0c0c",
    foreground_strong="#0b0c0c",
    foreground_subtle="#505a5f",
    colors=("#1d4ed8", "#b45309", "#047857", "#7c3aed", "#be123c", "#0e7490"),
    font_family="system-ui, sans-serif",
    label_font_size=14,
    major_label_font_size=14,
    legend_font_size=14,
    title_font_size=18,
    value_font_size=14,
    value_label_font_size=14,
    tooltip_font_size=14,
    no_data_font_size=20,
)
DROPPED_TAGS = {"script", "style"}
DROPPED_CLASSES = {"tooltip-overlay", "tooltip"}
_ids = itertools.count(1)


def _config(title: str, **options: object) -> dict[str, object]:
    return {
        "title": title,
        "style": STYLE,
        "js": [],  # no external script
        "width": WIDTH,
        "height": HEIGHT,
        "explicit_size": False,  # the viewBox scales to the page's width
        "no_prefix": True,
        "disable_xml_declaration": True,
        "print_values": False,
        "legend_at_bottom": True,
        "legend_at_bottom_columns": 3,
        "truncate_legend": 40,
        "no_data_text": "No data for this period",
        **options,
    }


def _clean(chart: Any, title: str, description: str) -> Markup:
    """Return a chart's SVG without script, style, comments or tooltips, named and described."""
    root = chart.render_tree()
    for parent in list(root.iter()):
        for child in list(parent):
            tag = child.tag if isinstance(child.tag, str) else ""
            classes = set((child.get("class") or "").split())
            if (
                not tag  # a comment or processing instruction
                or tag.rsplit("}", 1)[-1] in DROPPED_TAGS
                or classes & DROPPED_CLASSES
                or (tag.rsplit("}", 1)[-1] in ("desc", "title") and parent is not root)
            ):
                parent.remove(child)
        parent.attrib.pop("style", None)
    ident = f"chart-{next(_ids)}"
    root.attrib.pop("id", None)
    root.set("id", ident)
    root.set("class", "pygal-chart")
    root.set("role", "img")
    root.set("aria-labelledby", f"{ident}-title {ident}-desc")
    root.set("focusable", "false")
    title_node = next((c for c in root if c.tag == "title"), None)
    if title_node is None:
        title_node = ET.SubElement(root, "title")
    title_node.text = title
    title_node.set("id", f"{ident}-title")
    root.remove(title_node)
    root.insert(0, title_node)
    desc = ET.Element("desc", {"id": f"{ident}-desc"})
    desc.text = description
    root.insert(1, desc)
    for defs in [c for c in root if c.tag == "defs" and len(c) == 0]:
        root.remove(defs)
    return Markup(ET.tostring(root, encoding="unicode", short_empty_elements=True))


def line_chart(
    title: str,
    description: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    formatter: Callable[[float], str] | None = None,
    whole: bool = False,
) -> Markup:
    """Return a line chart, one value per label and series (`whole`: counts, integer steps)."""
    options: dict[str, object] = {
        "x_label_rotation": 30,
        "show_minor_x_labels": False,
        "x_labels_major_count": 10,
        "show_dots": len(labels) <= 31,
        "dots_size": 3,
        "min_scale": 2,
        "max_scale": 6,
    }
    if formatter is not None:
        options["value_formatter"] = formatter
    if whole:
        options["y_labels"] = whole_steps(
            max((v or 0 for _, values in series for v in values), default=0)
        )
    chart = pygal.Line(**_config(title, **options))
    chart.x_labels = list(labels)
    for name, values in series:
        chart.add(name, list(values))
    return _clean(chart, title, description)


def whole_steps(top: float, steps: int = 5) -> list[int]:
    """Return about `steps` whole-number axis marks from 0 to at least `top`."""
    step = max(1, math.ceil(top / steps))
    return list(range(0, max(step, math.ceil(top)) + step, step))


def bar_chart(
    title: str,
    description: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    series_name: str,
    formatter: Callable[[float], str] | None = None,
) -> Markup:
    """Return a horizontal bar chart of one value per label (a funnel, revenue by source)."""
    options: dict[str, object] = {"show_legend": False, "print_values": True, "min_scale": 2}
    if formatter is not None:
        options["value_formatter"] = formatter
    chart = pygal.HorizontalBar(**_config(title, **options))
    chart.x_labels = list(labels)
    chart.add(series_name, list(values))
    return _clean(chart, title, description)
