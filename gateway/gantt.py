"""The Gantt picture of one workstation's schedule (production.md F7, the "Machine Queues" view), SVG, drawn from the
read side: the run-schedule rows (gateway.schedule_views) of the runs in the workstation's `in_progress` and `queue`,
and the downtimes the last scheduling pass counted (`_downtimes`, services.production.scheduler). Served through a
signed link, `schedule_svg_content` on the printer or post-processor (gateway.files), so an <img> can show it.

One row per lane (`in_progress_max`), bars placed greedily on the first lane free at their start; time runs left to
right in UTC with a line at each midnight; downtimes are hatched across all lanes; `now` is a red line.
"""
from datetime import datetime, timedelta, timezone
from html import escape

from shared.uris import resource_path, uuid_of

WIDTH, LEFT, ROW, TOP = 1000, 10, 30, 40
COLOURS = {"in-progress": "#2ca02c", "paused": "#ff7f0e", "queued-work-ready": "#17becf", "queued": "#1f77b4",
           "calculating": "#7f7f7f", "calculated": "#7f7f7f"}


def _when(value):
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def svg(title, bars, downtimes, now, lanes=1):
    """`bars`: [(label, status, start, end)] (aware datetimes); `downtimes`: [(label, start, end)]. The SVG text."""
    spans = [(s, e) for _, _, s, e in bars] + [(s, e) for _, s, e in downtimes]
    begin = min([now, *(s for s, _ in spans)])
    end = max([now + timedelta(hours=1), *(e for _, e in spans)])
    seconds = max((end - begin).total_seconds(), 3600.0)
    scale = (WIDTH - 2 * LEFT) / seconds
    free, placed = [begin] * max(1, int(lanes or 1)), []
    for label, status, start, finish in sorted(bars, key=lambda b: b[2]):
        lane = next((i for i, t in enumerate(free) if t <= start), free.index(min(free)))
        free[lane] = max(free[lane], finish)
        placed.append((lane, label, status, start, finish))
    height = TOP + ROW * len(free) + 20

    def x(moment):
        return LEFT + (moment - begin).total_seconds() * scale

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
           f'height="{height}" font-family="sans-serif" font-size="11">',
           f"<title>{escape(title)}</title>",
           '<defs><pattern id="down" width="6" height="6" patternUnits="userSpaceOnUse" '
           'patternTransform="rotate(45)"><rect width="3" height="6" fill="#d62728" fill-opacity="0.35"/>'
           '</pattern></defs>',
           f'<text x="{LEFT}" y="16" font-size="13">{escape(title)}</text>']
    day = datetime.combine(begin.date() + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc)
    every = max(1, -(-70 // int(86400 * scale or 1)))  # a date label at most every 70 px
    count = 0
    while day < end:
        out.append(f'<line x1="{x(day):.1f}" y1="{TOP - 12}" x2="{x(day):.1f}" y2="{height - 20}" stroke="#ccc"/>')
        if count % every == 0:
            out.append(f'<text x="{x(day) + 2:.1f}" y="{TOP - 4}" fill="#666">{day:%a %d %b}</text>')
        day += timedelta(days=1)
        count += 1
    for label, start, finish in downtimes:
        out.append(f'<rect class="downtime" x="{x(start):.1f}" y="{TOP}" width="{max(1.0, x(finish) - x(start)):.1f}" '
                   f'height="{ROW * len(free)}" fill="url(#down)"><title>{escape(label)}: {start:%Y-%m-%d %H:%M} – '
                   f'{finish:%Y-%m-%d %H:%M} UTC</title></rect>')
    for lane, label, status, start, finish in placed:
        top = TOP + lane * ROW + 3
        width = max(1.0, x(finish) - x(start))
        out.append(f'<g class="run"><rect x="{x(start):.1f}" y="{top}" width="{width:.1f}" height="{ROW - 6}" '
                   f'rx="3" fill="{COLOURS.get(status, "#8c564b")}" fill-opacity="0.8"><title>{escape(label)} '
                   f'({escape(status or "")}): {start:%Y-%m-%d %H:%M} – {finish:%Y-%m-%d %H:%M} UTC</title></rect>'
                   f'<text x="{x(start) + 3:.1f}" y="{top + ROW / 2:.1f}" fill="#fff">{escape(label)}</text></g>')
    out.append(f'<line x1="{x(now):.1f}" y1="{TOP - 12}" x2="{x(now):.1f}" y2="{height - 20}" stroke="#d62728" '
               f'stroke-width="2"/>')
    out.append(f'<text x="{LEFT}" y="{height - 5}" fill="#666">UTC, {begin:%Y-%m-%d %H:%M} – '
               f'{end:%Y-%m-%d %H:%M}</text>')
    out.append("</svg>")
    return "\n".join(out)


def workstation_picture(store, path, now=None):
    """The SVG of the workstation at `path` as the read side holds it now; None when there is no such document."""
    doc = store.document(path, None)
    if doc is None:
        return None
    bars = []
    for run in [*(doc.get("in_progress") or []), *(doc.get("queue") or [])]:
        row = store.document(resource_path("run-schedule", uuid_of(run)), None) or {}
        start, finish = _when(row.get("estimated_start")), _when(row.get("estimated_end"))
        if start and finish:
            bars.append((row.get("name") or uuid_of(run)[:8], row.get("status"), start, finish))
    downtimes = [(label or "downtime", _when(start), _when(finish)) for start, finish, label in
                 doc.get("_downtimes") or [] if _when(start) and _when(finish)]
    lanes = doc.get("in_progress_max") or 1
    return svg(doc.get("name") or path, bars, downtimes, now or datetime.now(timezone.utc), lanes)
