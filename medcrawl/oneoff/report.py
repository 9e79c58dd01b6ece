"""`medcrawl report`: one HTML page to look at a harvest (counts, histogram, reasons, thumbnails).

The page opens from disk with no server: thumbnails lie in ``<name>_files/`` next to it, made
once per image (a second report over the same harvest re-uses them), in parallel.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote, urlsplit

import jinja2

from medcrawl.oneoff.harvest import Harvest, Image, source_link, thumbnails

GRID_SIZE = 200            # thumbnails per grid, least confident first (0: all)
BINS = 20
EXAMPLES = 3               # example rows per error/skip reason
COLOURS = {"medical": "#c0392b", "non-medical": "#2471a3", "unusable": "#7f8c8d"}


def write_report(harvest: Harvest, out: str | os.PathLike, grid_size: int = GRID_SIZE,
                 workers: int | None = None, progress: bool = False) -> Path:
    """Write the report page and its thumbnail folder; returns the page's path."""
    out = Path(out).resolve()
    folder = out.with_name(f"{out.stem}_files")
    grids = build_grids(list(harvest.images.values()), grid_size)
    shown = list({i.sha256: i for _, images, _ in grids for i in images}.values())
    thumbs = thumbnails(shown, folder, workers=workers, progress=progress)
    page = TEMPLATE.render(
        harvest=harvest, counts=count_rows(harvest.rows), reasons=reasons(harvest.rows),
        histogram=histogram(harvest.rows), grids=grids, colours=COLOURS,
        when=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        thumb=lambda i: relative(thumbs[i.sha256], out.parent) if i.sha256 in thumbs else None,
        image_link=lambda i: relative(i.file, out.parent) if i.file and i.file.exists() else web(i.row["image_url"]),
        source=source_link)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(page)
    os.replace(tmp, out)
    return out


def count_rows(rows: list[dict]) -> dict[str, Counter]:
    """Row counts by status, label, modality (medical rows) and site."""
    ok = [r for r in rows if r.get("status") == "ok"]
    return {"status": Counter(r.get("status") or "unknown" for r in rows),
            "label": Counter(r.get("label") or "none" for r in ok),
            "modality": Counter(r.get("modality") or "(none)" for r in ok if r.get("label") == "medical"),
            "site": Counter(r["site"] for r in rows)}


def reasons(rows: list[dict]) -> list[tuple[str, str, int, list[dict]]]:
    """(status, reason, count, example rows) for rows that are not ok, most frequent first."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        if row.get("status") != "ok":
            groups[(row.get("status") or "unknown", row.get("error") or "unknown")].append(row)
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return [(status, reason, len(group), group[:EXAMPLES]) for (status, reason), group in ordered]


def build_grids(images: list[Image], size: int) -> list[tuple[str, list[Image], int]]:
    """(title, least confident images first, how many there are) per label, then per modality."""
    by_label: dict[str, list[Image]] = defaultdict(list)
    by_modality: dict[str, list[Image]] = defaultdict(list)
    for image in images:
        by_label[image.label].append(image)
        if image.label == "medical" and image.modality:
            by_modality[image.modality].append(image)
    grids = []
    for prefix, groups in (("", by_label), ("medical · ", by_modality)):
        for name in sorted(groups):
            ranked = sorted(groups[name], key=lambda i: (i.confidence, i.sha256))
            grids.append((prefix + name, ranked[:size] if size else ranked, len(ranked)))
    return grids


def histogram(rows: list[dict], width: int = 600, height: int = 160) -> str:
    """Inline SVG: medical probability of the ok rows in BINS bins, stacked by label."""
    bins = {label: [0] * BINS for label in ("non-medical", "medical")}
    for row in rows:
        p, label = row.get("medical_probability"), row.get("label")
        if row.get("status") == "ok" and p is not None and label in bins:
            bins[label][min(int(p * BINS), BINS - 1)] += 1
    top = max([a + b for a, b in zip(*bins.values())] + [1])
    bar, plot = width / BINS, height - 20
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="histogram of medical probability">']
    for i in range(BINS):
        y = plot
        for label, counts in bins.items():
            h = counts[i] * plot / top
            y -= h
            if counts[i]:
                parts.append(f'<rect x="{i * bar + 1:.1f}" y="{y:.1f}" width="{bar - 2:.1f}" '
                             f'height="{h:.1f}" fill="{COLOURS[label]}"><title>{label} '
                             f'{i / BINS:.2f}–{(i + 1) / BINS:.2f}: {counts[i]}</title></rect>')
    for tick in (0, 0.25, 0.5, 0.75, 1):
        x = min(tick * width, width - 14)
        parts.append(f'<text x="{x:.0f}" y="{height - 4}" font-size="11">{tick:g}</text>')
    return "".join(parts) + "</svg>"


def web(url: str) -> str:
    """A link target from a row: http(s) and relative URLs only (a feed is data from the web)."""
    return url if urlsplit(url or "").scheme in ("http", "https", "") else ""


def relative(path: Path, base: Path) -> str:
    """A URL for a local file, relative to the report's folder."""
    return quote(Path(os.path.relpath(path, base)).as_posix())


ENVIRONMENT = jinja2.Environment(autoescape=True)
ENVIRONMENT.filters["web"] = web
TEMPLATE = ENVIRONMENT.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>medcrawl report: {{ harvest.name }}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.3em 1.5em 1em 0}td,th{border-bottom:1px solid #ddd;padding:2px 8px;text-align:left}
td.n{text-align:right}.tables{display:flex;flex-wrap:wrap;align-items:flex-start}
.grid{display:flex;flex-wrap:wrap;gap:6px}figure{margin:0;width:160px;font-size:12px}
figure img{width:160px;height:160px;object-fit:contain;background:#f3f3f3;display:block}
figcaption{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}.muted{color:#777}
.caption{margin:2px 0 0;color:#444;display:-webkit-box;-webkit-line-clamp:3;-webkit-box-orient:vertical;overflow:hidden}
</style></head><body>
<h1>Harvest report: {{ harvest.name }}</h1>
<p>{{ harvest.rows|length }} rows, {{ harvest.images|length }} distinct images
{%- if harvest.dataset %}, {{ harvest.reviewed() }} reviewed{% endif %}. Written {{ when }}.</p>
<h2>Counts</h2><div class="tables">
{% for title, key in [("Status", "status"), ("Label", "label"), ("Modality", "modality"), ("Site", "site")] %}
<table id="count-{{ key }}"><tr><th>{{ title }}</th><th>rows</th></tr>
{% for name, n in counts[key].most_common() %}<tr><td>{{ name }}</td><td class="n">{{ n }}</td></tr>{% endfor %}
</table>{% endfor %}</div>
<h2>Medical probability</h2>{{ histogram|safe }}
<p class="muted"><span style="color:{{ colours['medical'] }}">■</span> medical
<span style="color:{{ colours['non-medical'] }}">■</span> non-medical (ok rows)</p>
<h2>Errors and skipped images</h2>
{% if reasons %}<table id="reasons"><tr><th>status</th><th>reason</th><th>rows</th><th>examples</th></tr>
{% for status, reason, n, examples in reasons %}<tr><td>{{ status }}</td><td>{{ reason }}</td><td class="n">{{ n }}</td><td>
{% for row in examples %}{% set src = source(row) %}<a href="{{ row.image_url|web }}">{{ row.image_url|truncate(60) }}</a>
(<a href="{{ src[0]|web }}">{{ src[1] }}</a>){% if not loop.last %}<br>{% endif %}{% endfor %}</td></tr>{% endfor %}
</table>{% else %}<p>None.</p>{% endif %}
{% for title, images, total in grids %}
<h2>{{ title }} <span class="muted">({{ images|length }} of {{ total }}, least confident first)</span></h2>
<div class="grid">{% for image in images %}{% set src = source(image.row) %}<figure>
<a href="{{ image_link(image) }}" title="{{ image.row.image_url }}">{% if thumb(image) %}<img src="{{ thumb(image) }}" alt="{{ image.sha256[:12] }}">{% else %}<span class="muted">no thumbnail</span>{% endif %}</a>
<figcaption>{{ image.label }} {{ "%.2f"|format(image.confidence) }}{% if image.modality %} · {{ image.modality }}{% endif %}{% if image.correction %} ✓{% endif %}{% if image.uncertain %} · uncertain{% endif %}<br>
<a href="{{ image.row.image_url|web }}">image</a> · <a href="{{ src[0]|web }}">{{ src[1] }}</a> · {{ image.row.site }}</figcaption>
{% if image.caption %}<p class="caption" title="{{ image.caption }}">{{ image.caption|truncate(300) }}</p>{% endif %}</figure>{% endfor %}</div>
{% endfor %}</body></html>
""")
