"""The scan step between "the bytes landed" and "we process them" (files.md §0.2 step 4).

No antivirus engine is available to an embedded deployment, so the scan checks what can be checked without one,
reading only the head and tail of the file:
- the EICAR test signature, the industry's agreed "this would be a virus" marker, so the quarantine path can be
  exercised end to end;
- that the content is the declared format (an STL model is an STL, a PDF document starts like a PDF, …): a file
  that claims one type and is another is the classic carrier of something unwanted.
A deployment with ClamAV can put it in front of this (see README); the verdicts stay the same.
"""
import os

from services.files import mesh

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
_PEEK = 64 * 1024

# Leading bytes of the document formats bureaus attach (certificates, packing slips, photos, spreadsheets).
_MAGIC = {
    "pdf": (b"%PDF-",),
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpg": (b"\xff\xd8\xff",),
    "jpeg": (b"\xff\xd8\xff",),
    "gif": (b"GIF87a", b"GIF89a"),
    "tif": (b"II*\x00", b"MM\x00*"),
    "tiff": (b"II*\x00", b"MM\x00*"),
    "zip": (b"PK\x03\x04", b"PK\x05\x06"),
    "docx": (b"PK\x03\x04",),
    "xlsx": (b"PK\x03\x04",),
    "pptx": (b"PK\x03\x04",),
    "3mf": (b"PK\x03\x04",),
}
_TEXT = {"txt", "csv", "json", "xml", "md", "gcode", "nc"}
# What the mesh sniffer may answer for each declared mesh format.
MESH_FORMATS = {"stl": ("stl-binary", "stl-ascii"), "obj": ("obj",), "ply": ("ply",), "3mf": ("3mf",)}


def scan(path, declared):
    """('passed' | 'quarantined', reason). `declared` is a mesh format ('stl', …) or a file name / extension."""
    if _has_eicar(path):
        return "quarantined", "the file carries the EICAR antivirus test signature."
    kind = declared.rsplit(".", 1)[-1].lower() if declared else ""
    if kind in MESH_FORMATS:
        if os.path.getsize(path) == 0:
            return "passed", ""  # an empty model is not dangerous; analysis reports it as inoperable
        found = mesh.detect_format(path)
        if found not in MESH_FORMATS[kind]:
            what = found or "not a mesh format Stratum reads"
            return "quarantined", f"the content is not the declared format '{kind}' ({what})."
        return "passed", ""
    with open(path, "rb") as handle:
        head = handle.read(_PEEK)
    if kind in _MAGIC and head and not head.startswith(_MAGIC[kind]):
        return "quarantined", f"the content is not the declared format '{kind}'."
    if kind in _TEXT and b"\x00" in head:
        return "quarantined", f"the content is binary, not the declared text format '{kind}'."
    return "passed", ""


def _has_eicar(path):
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(_PEEK)
        if size > _PEEK:
            handle.seek(max(_PEEK, size - _PEEK))
            tail = handle.read(_PEEK)
        else:
            tail = b""
    return EICAR in head or EICAR in tail
