"""The review page: one static HTML file, no script, no external resource (viewable offline).

Every value that comes from data (file values, paths, rule names, run ids) goes through
`html.escape`. Elements carry data-* attributes with the figures they show, so a test can read
them from the rendered page.
"""

from __future__ import annotations

from collections import Counter
from html import escape
from string import Template
from typing import TYPE_CHECKING

from extractor.review.collect import DEIDENTIFIED, FILTERED, OUTCOMES, QUARANTINED
from extractor.review.diff import CHANGES, KEPT, PHI_CATEGORIES, AttributeChange

if TYPE_CHECKING:
    from extractor.review.report import GroupView, PhiStatistics, ReviewPage, SampleView

IDENTIFIED_NOTICE = (
    "IDENTIFIED DATA: this report shows original images and header values (PHI). "
    "Keep it where identified data may live, beside the identified warehouse; never copy it into an extract or share it."
)
SCRUBBED_ONLY_NOTICE = (
    "Scrubbed-only report: no original pixels and no original header values; "
    "it shows only what the extract releases, with what the scrub did to each attribute."
)

PAGE = Template(
    """<!-- $notice -->
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>$title</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 1.5em 3em; color: #1d1d1f; }
.notice { margin: 0 -1.5em 1em; padding: .7em 1.5em; font-weight: 600; }
.notice.identified { background: #b00020; color: #fff; }
.notice.scrubbed { background: #1b5e20; color: #fff; }
h1 { font-size: 1.5em; margin: .4em 0; } h2 { font-size: 1.2em; margin: 1.6em 0 .4em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1em; margin: 1em 0 .3em; }
.meta { color: #555; } .meta code { color: #1d1d1f; }
.metrics { display: flex; gap: .8em; flex-wrap: wrap; margin: 1em 0; }
.metric { border: 1px solid #ccc; border-radius: 6px; padding: .5em 1em; min-width: 8em; }
.metric .value { font-size: 1.6em; font-weight: 600; display: block; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .2em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.tables { display: flex; gap: 2em; flex-wrap: wrap; align-items: flex-start; }
.sample { border: 1px solid #ddd; border-radius: 6px; padding: .6em; margin: .8em 0; }
.pair { display: flex; gap: 1em; flex-wrap: wrap; }
figure { margin: 0; } figcaption { color: #555; font-size: .9em; }
img { background: #000; image-rendering: auto; display: block; }
.note { color: #8a4b00; } .empty { color: #777; font-style: italic; }
.change-removed { background: #fde2e1; } .change-emptied { background: #fff1d6; }
.change-replaced { background: #e8e1fb; } .change-hashed { background: #dcecfb; }
.change-shifted { background: #dff5e3; } .change-added { background: #eeeeee; }
code, .value-cell { font-family: ui-monospace, monospace; font-size: .9em; word-break: break-all; }
td code { white-space: nowrap; }
details > summary { cursor: pointer; }
</style>
</head>
<body>
<div class="notice $notice_class" id="notice">$notice</div>
<h1>Scrub review: run <code>$run_id</code></h1>
<p class="meta">$meta</p>
$summary
$groups
</body>
</html>
"""
)


def render_page(page: ReviewPage) -> str:
    notice = SCRUBBED_ONLY_NOTICE if page.scrubbed_only else IDENTIFIED_NOTICE
    return PAGE.substitute(
        notice=escape(notice),
        notice_class="scrubbed" if page.scrubbed_only else "identified",
        title=escape(f"Scrub review {page.run.run_id}" + (" (scrubbed only)" if page.scrubbed_only else " (IDENTIFIED)")),
        run_id=escape(page.run.run_id),
        meta=_meta(page),
        summary=_summary(page),
        groups="\n".join(_group_section(view, page.scrubbed_only) for view in page.groups),
    )


def _meta(page: ReviewPage) -> str:
    parts = [f"scrubbed at <code>{escape(page.run.scrubbed_at)}</code>"]
    if page.extract:
        parts.append(f"extract <code>{escape(page.extract)}</code>")
    if page.warehouse:
        parts.append(f"manifest from <code>{escape(page.warehouse)}</code>")
    return " · ".join(parts)


def _summary(page: ReviewPage) -> str:
    run = page.run
    outcomes = run.outcomes
    metrics = [
        ("instances in", len(run.entries), "instances"),
        ("de-identified", outcomes[DEIDENTIFIED], DEIDENTIFIED),
        ("filtered", outcomes[FILTERED], FILTERED),
        ("quarantined", outcomes[QUARANTINED], QUARANTINED),
        ("pixel-scrubbed", sum(run.pixel_rules.values()), "pixel-scrubbed"),
        ("device groups", len(page.groups), "groups"),
    ]
    cards = "".join(
        f'<div class="metric" data-metric="{escape(key)}" data-value="{value}"><span class="value">{value:,}</span>{escape(name)}</div>'
        for name, value, key in metrics
    )
    tables = "".join(
        [
            _count_table("Filtered, by rule", "rule", run.rules_for(FILTERED), "filtered-by-rule"),
            _count_table("Quarantined, by error", "error class", run.rules_for(QUARANTINED), "quarantined-by-error"),
            _count_table("Pixel rules applied", "rule", run.pixel_rules, "pixel-rules"),
        ]
    )
    return (
        '<h2 id="summary">Summary</h2>'
        f'<div class="metrics">{cards}</div>'
        f'<div class="tables">{tables}</div>'
        + _phi_section(page)
        + _groups_index(page)
    )


def _count_table(title: str, heading: str, counts: Counter, table_id: str) -> str:
    rows = [
        _row([str(key), n], {"key": key, "count": n})
        for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    ] or ['<tr><td colspan="2" class="empty">none</td></tr>']
    return f"<div><h3>{escape(title)}</h3>{_table(table_id, [heading, 'instances'], rows)}</div>"


def _table(table_id: str, headings: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headings)
    return f'<table id="{escape(table_id)}"><tr>{head}</tr>{"".join(rows)}</table>'


def _row(cells: list[str | int], data: dict[str, object], css: str = "") -> str:
    """A table row: numbers right-aligned, text escaped, figures also as data-* attributes."""
    attributes = "".join(f' data-{k}="{escape(str(v))}"' for k, v in data.items())
    css_class = f' class="{escape(css)}"' if css else ""
    tds = "".join(f'<td class="n">{c:,}</td>' if isinstance(c, int) else f"<td>{escape(c)}</td>" for c in cells)
    return f"<tr{css_class}{attributes}>{tds}</tr>"


def _phi_section(page: ReviewPage) -> str:
    stats = page.phi
    coverage = (
        f"Header statistics from {stats.examined:,} of {page.deidentified_total:,} de-identified instances"
        + (f" ({stats.unreadable:,} could not be read)" if stats.unreadable else "")
        + "; burned-in text from the pixel regions of the manifest (all instances)."
    )
    return (
        '<h2 id="phi">PHI by category</h2>'
        f'<p class="meta">{escape(coverage)}</p>'
        f'<div class="tables">{_phi_table(stats, "phi-categories")}{_change_table(stats.changes, "change-totals")}</div>'
    )


def _phi_table(stats: PhiStatistics, table_id: str) -> str:
    rows = [
        _row(
            [category, stats.attributes[category], stats.instances[category]],
            {"category": category, "attributes": stats.attributes[category], "instances": stats.instances[category]},
        )
        for category in PHI_CATEGORIES
    ]
    return _table(table_id, ["PHI category", "attributes / regions changed", "instances"], rows)


def _change_table(changes: Counter, table_id: str) -> str:
    rows = [_row([change, changes[change]], {"change": change, "count": changes[change]}, f"change-{change}") for change in CHANGES]
    return _table(table_id, ["what was done", "attributes"], rows)


def _groups_index(page: ReviewPage) -> str:
    rows = "".join(
        f'<tr><td><a href="#group-{view.number}">{escape(view.label)}</a></td>'
        f'<td>{escape(", ".join(view.group.modalities))}</td>'
        f'<td class="n">{len(view.group.entries):,}</td>'
        + "".join(f'<td class="n">{view.group.outcomes[o]:,}</td>' for o in OUTCOMES)
        + f"<td>{escape(_rules_text(view.group.rules))}</td></tr>"
        for view in page.groups
    )
    return (
        '<h2 id="groups">Device groups</h2>'
        '<p class="meta">Grouped by device signature (manufacturer, model, rows x columns), as pixel rules are written and reviewed.</p>'
        '<table id="group-index"><tr><th>device</th><th>modality</th><th>instances</th><th>de-identified</th>'
        f"<th>filtered</th><th>quarantined</th><th>rules</th></tr>{rows}</table>"
    )


def _rules_text(rules: Counter) -> str:
    return "; ".join(f"{outcome} {rule or '-'}: {n}" for (outcome, rule), n in sorted(rules.items()))


def _group_section(view: GroupView, scrubbed_only: bool) -> str:
    group = view.group
    outcomes = group.outcomes
    attributes = {
        "data-group": str(view.number),
        "data-instances": str(len(group.entries)),
        **{f"data-{o}": str(outcomes[o]) for o in OUTCOMES},
    }
    if view.signature_shown:
        attributes |= {
            "data-manufacturer": group.signature.manufacturer,
            "data-model": group.signature.model,
            "data-rows": str(group.signature.rows),
            "data-columns": str(group.signature.columns),
        }
    attribute_text = " ".join(f'{k}="{escape(v)}"' for k, v in attributes.items())
    counts = ", ".join(f"{outcomes[o]:,} {o}" for o in OUTCOMES)
    samples = "".join(_sample(sample, scrubbed_only) for sample in view.samples) or '<p class="empty">no sample</p>'
    return (
        f'<section class="group" id="group-{view.number}" {attribute_text}>'
        f"<h2>{escape(view.label)}</h2>"
        f'<p class="meta">{len(group.entries):,} instances ({escape(counts)}); modality {escape(", ".join(group.modalities) or "-")}'
        f"{('; ' + escape(_rules_text(group.rules))) if group.rules else ''}</p>"
        f'<details><summary>PHI statistics of this group</summary><div class="tables">'
        f'{_phi_table(view.phi, f"phi-group-{view.number}")}{_change_table(view.phi.changes, f"changes-group-{view.number}")}'
        f"</div></details>"
        f"{samples}</section>"
    )


def _sample(sample: SampleView, scrubbed_only: bool) -> str:
    entry = sample.entry
    title = f"{entry.outcome}" + (f" · rule {entry.rule}" if entry.rule else "")
    if entry.regions:
        title += " · regions " + ", ".join(f"[{x}, {y}, {w}, {h}]" for x, y, w, h in entry.regions)
    if entry.outcome == QUARANTINED:
        title += f" · {entry.error_class or 'error'}" + ("" if scrubbed_only else f": {entry.error or ''}")
    identity = f"input key <code>{escape(entry.source_key)}</code>"
    if not scrubbed_only:
        identity += f" · original <code>{escape(entry.location)}</code>"
    if entry.output:
        identity += f" · scrubbed <code>{escape(entry.output)}</code>"
    figures = []
    if not scrubbed_only:
        figures.append(_figure(sample.original_image, "original", "original"))
    if entry.output:
        figures.append(_figure(sample.scrubbed_image, "scrubbed", "scrubbed" + (" (blanked regions outlined)" if entry.regions else "")))
    elif entry.outcome != DEIDENTIFIED:
        figures.append(f'<p class="empty">not released ({escape(entry.outcome)}): no scrubbed file</p>')
    notes = "".join(f'<p class="note">{escape(note)}</p>' for note in sample.image_notes)
    return (
        f'<div class="sample" data-outcome="{escape(entry.outcome)}">'
        f"<h3>{escape(title)}</h3>"
        f'<p class="meta">{identity}{(" · " + escape(sample.frame_text)) if sample.frame_text else ""}</p>'
        f'<div class="pair">{"".join(figures)}</div>{notes}'
        f"{_inspector(sample.changes, scrubbed_only) if sample.changes else ''}</div>"
    )


def _figure(src: str | None, side: str, caption: str) -> str:
    if src is None:
        return f'<p class="empty">{escape(side)} image not available</p>'
    return (
        f'<figure class="{escape(side)}"><img src="{escape(src)}" alt="{escape(side)} image" data-side="{escape(side)}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _inspector(changes: list[AttributeChange], scrubbed_only: bool) -> str:
    counts = Counter(c.change for c in changes)
    summary = ", ".join(f"{change} {counts[change]}" for change in CHANGES if counts[change])
    changed = [c for c in changes if c.change != KEPT]
    kept = [c for c in changes if c.change == KEPT]
    header = "<tr><th>attribute</th><th>tag</th><th>VR</th>" + ("" if scrubbed_only else "<th>original</th>") + "<th>scrubbed</th><th>change</th></tr>"
    return (
        f'<details class="inspector"><summary>Metadata: {escape(summary)}</summary>'
        f"<table>{header}{''.join(_change_row(c, scrubbed_only) for c in changed)}</table>"
        f"<details><summary>{len(kept)} attributes kept as they were</summary>"
        f"<table>{header}{''.join(_change_row(c, scrubbed_only) for c in kept)}</table></details></details>"
    )


def _change_row(change: AttributeChange, scrubbed_only: bool) -> str:
    original = "" if scrubbed_only else f'<td class="value-cell">{_value(change.original)}</td>'
    return (
        f'<tr class="change-{escape(change.change)}" data-change="{escape(change.change)}">'
        f"<td>{escape(change.path)}</td><td><code>{escape(change.tag)}</code></td><td>{escape(change.vr)}</td>"
        f'{original}<td class="value-cell">{_value(change.scrubbed)}</td><td>{escape(change.change)}</td></tr>'
    )


def _value(text: str | None) -> str:
    return '<span class="empty">absent</span>' if text is None else escape(text)
