"""A traceability report's document (materials.md §3.11, §3.26): the genealogy drawn as a picture (PNG) and the PDF
that holds it with the report's tables. Pure functions of the gathered facts (services.materials.reports), so they
are tested without a service.

Libraries, chosen for a service that must render on any machine `make test` set up, with no system binary:
* the picture: networkx (already pinned for the files service's 3MF reading) places the graph in layers, one per
  generation of its topological order (purchase order → lot → batches → runs → pieces, left to right), and Pillow
  (already pinned: the layout and model snapshots) draws boxes and arrows. Graphviz's `dot` draws nicer graphs but
  is a system binary that this machine and `.ci/run` do not install; matplotlib would add a large dependency for
  boxes and arrows.
* the PDF: reportlab (pure Python wheels, BSD; the long-standing PDF toolkit) lays out the title, the tables and
  the picture with its platypus flowables, wrapping long URIs and splitting tables across pages. fpdf2 would do
  too; reportlab's tables split and repeat their header rows across pages without our code.
The facts (`facts`): {"title", "subtitle", "target": [(label, value)], "sections": [(heading, [header row], rows)],
"graph": {"nodes": [(id, kind, label)], "edges": [(from, to, label)]}}.
"""
import io
from xml.sax.saxutils import escape

import networkx as nx
from PIL import Image, ImageDraw, ImageFont

KIND_COLOURS = {"purchase-order": "#d9d2e9", "lot": "#fde9c9", "batch": "#cfe2f3", "target": "#f4b183",
                "run": "#d9ead3", "piece": "#eeeeee"}
KIND_ORDER = ("purchase-order", "lot", "batch", "target", "run", "piece")
BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 190, 46, 70, 18, 24
MAX_PER_LAYER = 40  # a layer longer than this is drawn as its first rows and a "+ n more" box
MAX_COLUMNS = 40  # a deeper graph keeps its first and last generations, an "n generations" box between them


def layers(graph):
    """Nodes in columns, left to right. Each node's column is its generation in the graph's topological order, then
    pulled right to just before its nearest successor (a lot without a purchase order sits beside its batch, not
    at the far left); within a column, nodes follow their predecessors' rows (fewer crossings). A cycle, which
    genealogy edges never make, falls back to one column per node kind."""
    try:
        order = list(nx.topological_sort(graph))
    except nx.NetworkXUnfeasible:
        by_kind = {}
        for node, data in graph.nodes(data=True):
            by_kind.setdefault(data.get("kind"), []).append(node)
        return [sorted(by_kind[k]) for k in KIND_ORDER if k in by_kind]
    layer = {}
    for node in order:
        layer[node] = max((layer[p] + 1 for p in graph.predecessors(node)), default=0)
    for node in reversed(order):
        successors = list(graph.successors(node))
        if successors:
            layer[node] = min(layer[s] for s in successors) - 1
    columns = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for node in sorted(layer):
        columns[layer[node]].append(node)
    row = {}
    for column in columns:
        def weight(node):
            above = [row[p] for p in graph.predecessors(node) if p in row]
            return (sum(above) / len(above) if above else -1, node)
        column.sort(key=weight)
        row.update({node: index for index, node in enumerate(column)})
    return columns


def picture(graph_facts):
    """PNG bytes of the genealogy graph: boxes (coloured by kind) in generations left to right, arrows along edges
    labelled with the quantity moved."""
    graph = nx.DiGraph()
    for node_id, kind, label in graph_facts["nodes"]:
        graph.add_node(node_id, kind=kind, label=label)
    for source, target, label in graph_facts["edges"]:
        if source in graph and target in graph:
            graph.add_edge(source, target, label=label)
    columns = layers(graph) or [[]]
    if len(columns) > MAX_COLUMNS:  # the picture stays printable; the tables still list every batch and edge
        half = MAX_COLUMNS // 2
        skipped = len(columns) - 2 * half
        marker = f"... {skipped} generations ..."
        graph.add_node(marker, kind="batch", label=f"{sum(len(c) for c in columns[half:-half])} more batches")
        columns = columns[:half] + [[marker]] + columns[-half:]
    hidden = {}
    for index, column in enumerate(columns):
        if len(column) > MAX_PER_LAYER:
            hidden[index] = len(column) - MAX_PER_LAYER
            columns[index] = column[:MAX_PER_LAYER]
    tallest = max(len(c) + (1 if i in hidden else 0) for i, c in enumerate(columns)) or 1
    width = 2 * MARGIN + len(columns) * BOX_W + (len(columns) - 1) * GAP_X
    height = 2 * MARGIN + tallest * BOX_H + (tallest - 1) * GAP_Y
    image = Image.new("RGB", (max(width, 200), max(height, 100)), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    place = {}
    for index, column in enumerate(columns):
        count = len(column) + (1 if index in hidden else 0)
        top = MARGIN + (tallest - count) * (BOX_H + GAP_Y) / 2
        x = MARGIN + index * (BOX_W + GAP_X)
        for row, node in enumerate(column):
            place[node] = (x, top + row * (BOX_H + GAP_Y))
        if index in hidden:
            y = top + len(column) * (BOX_H + GAP_Y)
            draw.rectangle([x, y, x + BOX_W, y + BOX_H], outline="#999999", width=1)
            draw.text((x + BOX_W / 2, y + BOX_H / 2), f"+ {hidden[index]} more", fill="#555555", font=font,
                      anchor="mm")
    for source, target, data in graph.edges(data=True):
        if source not in place or target not in place:
            continue
        (x0, y0), (x1, y1) = place[source], place[target]
        start, end = (x0 + BOX_W, y0 + BOX_H / 2), (x1, y1 + BOX_H / 2)
        draw.line([start, end], fill="#555555", width=2)
        _arrow_head(draw, start, end)
        if data.get("label"):
            middle = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 - 7)
            draw.text(middle, data["label"], fill="#1f4e79", font=font, anchor="mm")
    for node, (x, y) in place.items():
        kind = graph.nodes[node].get("kind")
        draw.rectangle([x, y, x + BOX_W, y + BOX_H], fill=KIND_COLOURS.get(kind, "#ffffff"), outline="#333333",
                       width=2 if kind == "target" else 1)
        lines = [kind or ""] + _wrap(str(graph.nodes[node].get("label") or node), 30)[:2]
        for number, line in enumerate(lines):
            draw.text((x + 6, y + 5 + number * 13), line, fill="#000000" if number else "#555555", font=font)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _arrow_head(draw, start, end, size=8):
    import math
    angle = math.atan2(end[1] - start[1], end[0] - start[0])
    left = (end[0] - size * math.cos(angle - 0.4), end[1] - size * math.sin(angle - 0.4))
    right = (end[0] - size * math.cos(angle + 0.4), end[1] - size * math.sin(angle + 0.4))
    draw.polygon([end, left, right], fill="#555555")


def _wrap(text, width):
    return [text[i:i + width] for i in range(0, len(text), width)] or [""]


def pdf(facts, png):
    """The report as PDF bytes: title, the target's header, the genealogy picture, then each section's table."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Image as PdfImage
    from reportlab.platypus import LongTable, Paragraph, SimpleDocTemplate, Spacer, TableStyle

    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=7.5, leading=9)
    out = io.BytesIO()
    page = landscape(A4)
    document = SimpleDocTemplate(out, pagesize=page, title=facts["title"], author="Stratum",
                                 leftMargin=12 * mm, rightMargin=12 * mm, topMargin=12 * mm, bottomMargin=12 * mm)
    usable_w, usable_h = page[0] - 24 * mm, page[1] - 24 * mm

    def cell(value):
        return Paragraph(escape("" if value is None else str(value)), small)

    story = [Paragraph(escape(facts["title"]), styles["Title"])]
    if facts.get("subtitle"):
        story.append(Paragraph(escape(facts["subtitle"]), styles["Italic"]))
    story.append(Spacer(1, 4 * mm))
    header = LongTable([[cell(k), cell(v)] for k, v in facts.get("target", [])], colWidths=[60 * mm, None])
    header.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                                ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#f2f2f2"))]))
    story += [header, Spacer(1, 5 * mm), Paragraph("Genealogy", styles["Heading2"])]
    with Image.open(io.BytesIO(png)) as picture_image:
        w, h = picture_image.size
    scale = min(usable_w / w, (usable_h - 30 * mm) / h, 1.0)
    story.append(PdfImage(io.BytesIO(png), width=w * scale, height=h * scale))
    for heading, columns, rows in facts.get("sections", []):
        story += [Spacer(1, 4 * mm), Paragraph(escape(heading), styles["Heading2"])]
        if not rows:
            story.append(Paragraph("None.", small))
            continue
        table = LongTable([[cell(c) for c in columns]] + [[cell(v) for v in row] for row in rows], repeatRows=1,
                          colWidths=[usable_w / len(columns)] * len(columns))
        table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                                   ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde7f3")),
                                   ("VALIGN", (0, 0), (-1, -1), "TOP")]))
        story.append(table)
    document.build(story)
    return out.getvalue()
