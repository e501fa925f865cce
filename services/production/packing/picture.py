"""The picture of a layout: the plate's outline and every placed part's outline, labelled (SVG, and PNG through
Pillow). Plate coordinates in mm, y up (the image is flipped so the plate looks as seen from above)."""
from html import escape

from PIL import Image, ImageDraw, ImageFont

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]
MARGIN = 0.04  # of the plate's larger side


def _frame(plate_polygon):
    minx, miny, maxx, maxy = plate_polygon.bounds
    pad = MARGIN * max(maxx - minx, maxy - miny)
    return minx - pad, miny - pad, maxx + pad, maxy + pad


def _rings(polygon):
    return [list(polygon.exterior.coords)] + [list(r.coords) for r in polygon.interiors]


def svg(plate_polygon, parts, title=""):
    """`parts`: [(label, key, polygon)] placed outlines. Returns the SVG text."""
    x0, y0, x1, y1 = _frame(plate_polygon)
    width, height = x1 - x0, y1 - y0
    colours = {}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.3f} {height:.3f}" '
           f'width="{min(1000, 4 * width):.0f}" height="{min(1000, 4 * width) * height / width:.0f}">',
           f"<title>{escape(title)}</title>",
           f'<g transform="translate({-x0:.4f},{y1:.4f}) scale(1,-1)">']

    def path(polygon):
        return " ".join("M " + " L ".join(f"{x:.3f},{y:.3f}" for x, y in ring) + " Z" for ring in _rings(polygon))

    stroke = max(width, height) / 500
    out.append(f'<path d="{path(plate_polygon)}" fill="#f4f4f4" stroke="#333" stroke-width="{stroke * 2:.3f}"/>')
    for label, key, polygon in parts:
        colour = colours.setdefault(key, PALETTE[len(colours) % len(PALETTE)])
        out.append(f'<path d="{path(polygon)}" fill="{colour}" fill-opacity="0.35" fill-rule="evenodd" '
                   f'stroke="{colour}" stroke-width="{stroke:.3f}"><title>{escape(label)}</title></path>')
    out.append("</g>")
    size = max(width, height) / 60
    for label, key, polygon in parts:
        point = polygon.representative_point()
        out.append(f'<text x="{point.x - x0:.3f}" y="{y1 - point.y:.3f}" font-size="{size:.3f}" '
                   f'text-anchor="middle" dominant-baseline="middle" font-family="sans-serif">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def png(plate_polygon, parts, path, pixels=1000):
    """Render the same picture as a PNG file at `path` (`pixels` on the larger side)."""
    x0, y0, x1, y1 = _frame(plate_polygon)
    scale = pixels / max(x1 - x0, y1 - y0)
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image, "RGBA")

    def pixel(ring):
        return [((x - x0) * scale, (y1 - y) * scale) for x, y in ring]

    rings = _rings(plate_polygon)
    draw.polygon(pixel(rings[0]), fill="#f4f4f4", outline="#333333", width=3)
    colours = {}
    for label, key, polygon in parts:
        colour = colours.setdefault(key, PALETTE[len(colours) % len(PALETTE)])
        rgb = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
        part_rings = _rings(polygon)
        draw.polygon(pixel(part_rings[0]), fill=rgb + (90,), outline=rgb, width=2)
        for hole in part_rings[1:]:
            draw.polygon(pixel(hole), fill="#f4f4f4", outline=rgb, width=1)
    font = ImageFont.load_default()
    for label, key, polygon in parts:
        point = polygon.representative_point()
        draw.text(((point.x - x0) * scale, (y1 - point.y) * scale), label, fill="black", font=font, anchor="mm")
    image.save(path, "PNG")
