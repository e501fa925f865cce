"""Generate shared/catalogue/resources.json from docs/reference/api-reference.txt and overrides.json.

    python -m shared.catalogue.generate          # rewrite resources.json
    python -m shared.catalogue.generate --check  # exit 1 when resources.json is stale

Pipeline: parse sections → parse operations and their tables → group operations into resources → normalise fields
→ apply the hand-curated overrides (facts from spec/domain/*.md) → write sorted JSON (indent=1, trailing newline).

Input quirks handled (the reference is a scrape of a rendered API site):

* A section starts at a line that is only a path (`/order/`). Lines that look like paths but carry a query string
  (`/material_batch_sensor_data/?filter[material_batch]=`) or prose (`/run-queue/ endpoint helps …`) are prose.
* A section holds several *operations*, each `prose … Schema (application/json) [property table] Responses
  [status table]`. They carry no verb: a block answering 200 is a read (LIST on a collection, GET on an item path,
  and a read after the first one is the GET-one block); a block answering 204 is a write (POST on a collection, PUT
  on an item path).
* Some operations inside a section belong to an endpoint whose own path line was lost in the scrape (the GET-one of
  /line-item/ sits inside /line-item//clone/, Addiguru analyses sit inside /access-info-for-resource/ …). The domain
  maps list them by reference line; overrides.json `hidden` claims those lines for the map's proposed path.
* A lost `{uuid}` leaves an empty segment: `/order//clone/` is the action `/order/{uuid}/clone/`,
  `/guideline/for-line-item//` is `/guideline/for-line-item/{uuid}/`; overrides.json `paths` says which.
* Property rows are `| name | type |` followed by a description that runs over lines up to a line ending in `|`.
  A row with one cell lost either its type (`| customer_email |` → string) or its name (`| string |` → named by
  overrides `lost_names`, else dropped).
* Descriptions embed markers: `Required`, `Default: X` (glued to what follows: `Default: NoneChoices`),
  `Choices '"a|b|c"'` (sometimes wrapped over lines), `Example: '…'`. Choice lists that spell a single word letter by
  letter (`'"s|e|r|v|i|c|e|_|u|r|l"'`) are scraper noise and dropped.
* "Required" marks are printed for every POST field without a default, computed ones included; overrides.json
  `required` gives the realistic set where a map states it, otherwise the reference marks minus read-only fields are
  kept.
"""
import json
import os
import re
import sys
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
REFERENCE = os.path.join(ROOT, "docs", "reference", "api-reference.txt")
OVERRIDES = os.path.join(HERE, "overrides.json")
OUTPUT = os.path.join(HERE, "resources.json")


# -- 1. sections and operations --------------------------------------------------------------------------------------

_PATH_LINE = re.compile(r"^/[A-Za-z0-9_\-{}/]*/$")
_PROPERTY_HEADER = "| Property | Type | Description |"
_STATUS_HEADER = "| Status Code | Description |"
_ROW = re.compile(r"^\| (?P<first>[^|]+?) \|(?: (?P<second>[^|]+?) \|)?$")
_STATUS_ROW = re.compile(r"^\| (?P<status>\d{3}) \|$")


@dataclass
class Row:
    name: str | None
    type: str | None
    text: str  # the description with its markers, lines joined by spaces
    line: int


@dataclass
class Operation:
    line: int  # 1-based reference line of the operation's first line
    prose: list
    rows: list
    responses: list  # [(status, text)]

    @property
    def statuses(self):
        return [status for status, _ in self.responses]

    @property
    def is_write(self):
        return 200 not in self.statuses and any(s in (201, 204) for s in self.statuses)


@dataclass
class Section:
    path: str
    line: int
    operations: list = field(default_factory=list)


def read_reference(path=REFERENCE):
    with open(path, encoding="utf-8") as handle:
        return handle.read().split("\n")


def parse_reference(lines):
    """Reference lines → sections, each with its operations."""
    sections, start = [], None
    for index, line in enumerate(lines):
        if _PATH_LINE.match(line):
            if start is not None:
                sections.append(_section(lines, start, index))
            start = index
    if start is not None:
        sections.append(_section(lines, start, len(lines)))
    return sections


def _section(lines, start, end):
    section = Section(path=lines[start], line=start + 1)
    index = start + 1
    while index < end:
        operation, index = _operation(lines, index, end)
        if operation is None:
            break
        section.operations.append(operation)
    return section


def _operation(lines, index, end):
    """One `prose, Schema, [table], Responses, table` block from `index`; returns (operation, next index)."""
    first = index
    while index < end and lines[index] != "Schema (application/json)":
        index += 1
    if index >= end:
        return None, end
    prose = [line for line in lines[first:index] if line.strip()]
    rows, index = _property_table(lines, index + 1, end)
    if index < end and lines[index] == "Responses":
        index += 1
    responses, index = _status_table(lines, index, end)
    return Operation(line=first + 1, prose=prose, rows=rows, responses=responses), index


def _property_table(lines, index, end):
    rows = []
    if index >= end or lines[index] != _PROPERTY_HEADER:
        return rows, index
    index += 2  # header and |---| line
    while index < end and lines[index] != "Responses":
        match = _ROW.match(lines[index])
        if not match:
            index += 1  # a lone "|" closing a description
            continue
        start = index
        text, index = _cell_text(lines, index + 1, end)
        first, second = match.group("first"), match.group("second")
        if second is not None:
            rows.append(Row(first, second, text, start + 1))
        elif first.lower() in _TYPE_WORDS:
            rows.append(Row(None, first, text, start + 1))  # the property name was lost
        else:
            rows.append(Row(first, None, text, start + 1))  # the type was lost
    return rows, index


def _cell_text(lines, index, end):
    """Description lines up to (and including) the one that ends with `|`."""
    parts = []
    while index < end:
        line = lines[index]
        index += 1
        if line.endswith("|"):
            parts.append(line[:-1].strip())
            break
        parts.append(line.strip())
    return " ".join(p for p in parts if p), index


def _status_table(lines, index, end):
    responses = []
    if index >= end or lines[index] != _STATUS_HEADER:
        return responses, index
    index += 2
    while index < end:
        match = _STATUS_ROW.match(lines[index])
        if not match:
            break
        text, index = _cell_text(lines, index + 1, end)
        responses.append((int(match.group("status")), text))
    return responses, index


_TYPE_WORDS = {"string", "integer", "int", "float", "number", "boolean", "bool", "uri", "url", "array", "object",
               "dict", "iso-8601 datetime", "iso-8601 date", "timedelta", "uuid", "list"}
