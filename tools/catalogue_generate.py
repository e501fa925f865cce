"""Generate shared/catalogue/resources.json from docs/reference/api-reference.txt and shared/catalogue/overrides.json.

    python -m tools.catalogue_generate          # rewrite resources.json (or `make catalogue`)
    python -m tools.catalogue_generate --check  # exit 1 when resources.json is stale

A development tool, not part of the running system: processes only load resources.json (shared.catalogue).

Pipeline: parse sections → parse each section's operations and their tables → place every operation in a resource
(collection, item path or per-uuid action) → normalise the fields → apply the hand-curated overrides (facts from
spec/domain/*.md, see overrides.json) → write sorted JSON (indent=1, trailing newline). `build()` returns the dict.

Quirks of the input (a scrape of a rendered API site) and what is done with them:

* A section starts at a line that is only a path (`/order/`). Lines that look like paths but carry a query string
  (`/material_batch_sensor_data/?filter[material_batch]=`) or prose (`/run-queue/ endpoint helps …`) are prose.
* A section holds several *operations*, each `prose, Schema (application/json), [property table], Responses,
  status table`, and none names its verb. A block answering 200 is a read: on a collection the first read is LIST
  and a later one the GET-one block; on an item path it is GET. A block answering 204 is a write: POST on a
  collection, PUT on an item path.
* Some operations belong to an endpoint whose path line was lost (the GET-one block of /line-item/ sits inside
  /line-item//clone/; Addiguru analyses sit inside /access-info-for-resource/ …). The maps name them by reference
  line: overrides.json `operations` moves such a block to its resource, `hidden` gives a lost endpoint the map's
  proposed path, and an `ignore` entry drops one nobody could place.
* A lost `{uuid}` leaves an empty segment: `/order//clone/` is the action `/order/{uuid}/clone/`, `/x//` the item
  path of x; overrides.json `sections` remaps the one path this rule gets wrong.
* A property row is `| name | type |` and its description runs over lines up to one ending in `|`. A one-cell row
  lost either its type (`| customer_email |` → string) or its name (`| string |` → overrides.json `lost_names`).
* Descriptions carry markers: `Required`, `Default: X` (glued to what follows: `Default: NoneChoices`), `Choices
  '"a|b"'` or a Python repr wrapped over lines (`('"…|Polyjet ' 'Anatomy|…"')`), `Example: '…'`. Choice lists
  spelling a word letter by letter (`'"s|e|r|v|i|c|e|_|u|r|l"'`) are dropped, lists written as prose (`'"queued,
  processing, complete, error"'`, `'"Select: optional, required or hidden"'`) are split, boolean "choices"
  (`'"True|False"'`) are dropped. A default of the wrong type (`Default: False` on a float) is dropped; when two
  POST blocks disagree the concrete default wins over `None`.
* "Required" is printed for every POST field without a default, computed ones included (the maps call it noise), so
  `required` comes from overrides.json only, where a map gives the realistic set.
* A 4xx cell may list several messages in one run (`…not seem printable An order with…`): it is split before the
  sentence openings the reference uses. "RecordNotFound raised"-style placeholders are not messages.
* Most docstrings are the framework's boilerplate ("This is a basic API endpoint wrapper…"); the description is the
  first other prose line, or an overrides.json `description` taken from the map.
* A resource that can be neither created nor updated (a read projection or a report) has only read-only fields.
"""
import ast
import json
import os
import re
import sys
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CATALOGUE = os.path.join(ROOT, "shared", "catalogue")
REFERENCE = os.path.join(ROOT, "docs", "reference", "api-reference.txt")
OVERRIDES = os.path.join(CATALOGUE, "overrides.json")
OUTPUT = os.path.join(CATALOGUE, "resources.json")


# -- 1. sections and operations --------------------------------------------------------------------------------------

_PATH_LINE = re.compile(r"^/[A-Za-z0-9_\-{}/]*/$")
_PROPERTY_HEADER = "| Property | Type | Description |"
_STATUS_HEADER = "| Status Code | Description |"
_ROW = re.compile(r"^\| (?P<first>[^|]+?) \|(?: (?P<second>[^|]+?) \|)?$")
_STATUS_ROW = re.compile(r"^\| (?P<status>\d{3}) \|$")
# the reference's type words → catalogue types. "URL" marks a URI whose target kind varies (no `ref`), except the
# external links overrides.json lists in `external_urls`, which are plain strings.
TYPES = {
    "string": "string", "uuid": "string", "iso-8601 date": "string", "url": "uri",
    "uri": "uri", "iso-8601 datetime": "datetime", "integer": "integer", "float": "number", "timedelta": "number",
    "boolean": "boolean", "array": "array", "object": "object", "anything": "any",
}


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
        elif first.lower() in TYPES:
            rows.append(Row(None, first, text, start + 1))  # the property name was lost
        else:
            rows.append(Row(first, None, text, start + 1))  # the type was lost
    return rows, index


def _cell_text(lines, index, end, separator=" "):
    """Description lines up to (and including) the one that ends with `|`."""
    parts = []
    while index < end:
        line = lines[index]
        index += 1
        if line.endswith("|"):
            parts.append(line[:-1].strip())
            break
        parts.append(line.strip())
    return separator.join(p for p in parts if p), index


def _status_table(lines, index, end):
    responses = []
    if index >= end or lines[index] != _STATUS_HEADER:
        return responses, index
    index += 2
    while index < end:
        match = _STATUS_ROW.match(lines[index])
        if not match:
            break
        text, index = _cell_text(lines, index + 1, end, separator="\n")
        responses.append((int(match.group("status")), text))
    return responses, index


# -- 2. property cells -----------------------------------------------------------------------------------------------

_LITERALS = r"(?:\(\s*(?:'[^']*'\s*)+\)|'[^']*')"
_CHOICES = re.compile(r"Choices\s*(" + _LITERALS + ")")
_EXAMPLE = re.compile(r"Example:\s*(" + _LITERALS + ")")
_DEFAULT = re.compile(r"Default:\s?(.*?)\s*(?=Choices|Example:|$)")
MISSING = object()


@dataclass
class Cell:
    description: str
    required: bool  # the reference's "Required" mark: kept out of the catalogue (see the module docstring)
    default: object  # raw text after "Default:", or MISSING
    choices: list | None
    example: str | None


def parse_cell(text):
    """A property description → its prose and markers."""
    choices_match, example_match, default_match = _CHOICES.search(text), _EXAMPLE.search(text), _DEFAULT.search(text)
    starts = [m.start() for m in (choices_match, example_match, default_match) if m]
    head = text[:min(starts)].strip() if starts else text.strip()
    required = head == "Required" or head.endswith(" Required")
    if required:
        head = head[:-len("Required")].strip()
    if head.lower() == "none available":
        head = ""
    return Cell(
        description=head,
        required=required,
        default=default_match.group(1).strip() if default_match else MISSING,
        choices=_split_choices(_literal(choices_match.group(1))) if choices_match else None,
        example=_literal(example_match.group(1)) if example_match else None,
    )


def _literal(payload):
    """`'abc'` or `('ab ' 'c')` (a Python repr wrapped over lines) → `abc` / `ab c`."""
    return "".join(re.findall(r"'([^']*)'", payload))


def _split_choices(text):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    values = text.split("|")
    if all(len(value) <= 1 for value in values):
        return None  # a word spelt letter by letter ('"b|u|r|e|a|u"'): scraper noise
    if len(values) == 1 and re.search(r",|\bor\b", values[0]):
        # a list written as prose: '"queued, processing, complete, error"', '"Select: optional, required or hidden"'
        values = re.split(r"\s*,\s*|\s+or\s+", re.sub(r"^Select:\s*", "", values[0]))
    return values


# -- 3. operations → resources ---------------------------------------------------------------------------------------

VERB_ORDER = ("LIST", "POST", "GET", "PUT", "DELETE")
READ_ONLY_VERBS = ("LIST", "GET")


@dataclass
class Part:
    """An operation placed in a resource: on its collection path, its item path, or one of its per-uuid actions."""
    operation: Operation
    role: str  # "collection", "item" or "action"
    action: str | None = None  # the action path, for role == "action"


@dataclass
class Draft:
    name: str
    path: str
    parts: list = field(default_factory=list)


def placement(path):
    """A section path → (resource name, role, action path). `{uuid}` marks an item path; an empty segment is a lost
    `{uuid}`: `/order//clone/` is the action `/order/{uuid}/clone/`, `/x//` the item path of x."""
    segments = path[1:-1].split("/")
    if "{uuid}" in segments:
        return "/".join(segments[:segments.index("{uuid}")]), "item", None
    if "" in segments:
        index = segments.index("")
        base, rest = segments[:index], segments[index + 1:]
        name = "/".join(base)
        if rest:
            return name, "action", f"/{name}/{{uuid}}/{'/'.join(rest)}/"
        return name, "item", None
    return "/".join(segments), "collection", None


def group_operations(sections, overrides):
    """Place every operation in a resource draft: by its section path, unless overrides.json moves it (an operation
    of a lost-path endpoint, see `hidden` and `operations`) or ignores it."""
    drafts = {}
    moved = {int(line): spec for line, spec in overrides.get("operations", {}).items()}
    for name, spec in overrides.get("hidden", {}).items():
        for line in spec["lines"]:
            moved[line] = {"resource": name, "role": "collection"}
    section_map = overrides.get("sections", {})

    def draft(name, path=None):
        if name not in drafts:
            drafts[name] = Draft(name=name, path=path or f"/{name}/")
        return drafts[name]

    for section in sections:
        remap = section_map.get(section.path, {})
        name, role, action = placement(section.path)
        name, role = remap.get("resource", name), remap.get("role", role)
        target = draft(name, remap.get("path"))
        for operation in section.operations:
            spec = moved.pop(operation.line, None)
            if spec is None:
                target.parts.append(Part(operation, role, action))
            elif "ignore" not in spec:
                other = draft(spec["resource"], overrides.get("hidden", {}).get(spec["resource"], {}).get("path"))
                other.parts.append(Part(operation, spec.get("role", "collection"), spec.get("action")))
    if moved:
        raise ValueError(f"overrides.json names operations that do not exist: {sorted(moved)}")
    for name, spec in overrides.get("hidden", {}).items():
        draft(name, spec.get("path"))  # hidden endpoints without operations of their own
    return drafts


def documented_verbs(parts):
    """Verbs shown by the reference: on a collection the first read is LIST, later reads are the GET-one block and a
    write is POST; on an item path a read is GET and a write is PUT."""
    verbs, listed = set(), False
    for part in sorted(parts, key=lambda p: p.operation.line):
        if part.role == "action":
            continue
        if part.role == "item":
            verbs.add("PUT" if part.operation.is_write else "GET")
        elif part.operation.is_write:
            verbs.add("POST")
        elif not listed:
            verbs.add("LIST")
            listed = True
        else:
            verbs.add("GET")
    return verbs


# -- 4. fields -------------------------------------------------------------------------------------------------------

def collect_rows(parts, lost_names):
    """Every property row of the parts, by field name (the rows of one field across LIST, POST and GET blocks)."""
    rows = {}
    for part in sorted(parts, key=lambda p: p.operation.line):
        for row in part.operation.rows:
            name = row.name or lost_names.get(str(row.line))
            if name:
                rows.setdefault(name, []).append((row, part.operation.is_write))
    return rows


def normalise_field(name, rows, context):
    """The rows of one field → its catalogue entry (type, choices, default, reference, …)."""
    cells = [(parse_cell(row.text), is_write) for row, is_write in rows]
    type_word = next((row.type.lower() for row, _ in rows if row.type), "string")
    kind = TYPES.get(type_word, "string")
    if type_word == "url" and name in context.external_urls:
        kind = "string"
    description = next((c.description for c, w in cells if not w and c.description), None)
    description = description or next((c.description for c, _ in cells if c.description), "")
    spec = {"type": kind, "required": False, "readonly": name in context.readonly_names,
            "filter_only": False, "description": description}
    choices = next((c.choices for c, _ in cells if c.choices), None)
    if choices and kind != "boolean":
        spec["choices"] = _typed_choices(choices, kind)
    defaults = [c.default for c, w in cells if w and c.default is not MISSING]
    defaults.sort(key=lambda text: text == "None")  # when two POST blocks disagree, the concrete default wins
    default = coerce_default(defaults[0], kind) if defaults else MISSING
    if default is not MISSING:
        spec["default"] = default
    if kind == "array":
        example = next((c.example for c, _ in cells if c.example), None)
        spec["items"] = _items(name, example, description)
    target = context.reference_for(name, spec) if type_word != "url" else None  # a URL's target kind varies
    if target:
        spec["ref"] = target
    return spec


def _typed_choices(choices, kind):
    if kind == "integer" and all(re.fullmatch(r"-?\d+", c) for c in choices):
        return [int(c) for c in choices]
    return choices


def coerce_default(text, kind):
    """The text after "Default:" → a JSON value of the field's type."""
    if text == "None":
        return None
    if kind == "string":
        return text
    if kind == "boolean":
        return {"True": True, "False": False}.get(text, text)
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    expected = {"integer": int, "number": (int, float), "object": dict, "array": list}.get(kind)
    if expected and (not isinstance(value, expected) or isinstance(value, bool)):
        return MISSING  # e.g. "Default: False" on a float: a scraper artefact
    return value


def _items(name, example, description):
    """The item type of an array, read from its example: `'["..."]'` is a list of URIs (unless the field holds
    names, e-mails or other words), `'[{}]'` a list of objects."""
    if not example:
        return "any"
    example = example.strip()
    if example.startswith("[{") or example.startswith("[ {"):
        return "object"
    if example == '["..."]':
        words = (name + " " + description).lower()
        if any(hint in words for hint in ("email", "name", "code", "string", "text", "comment", "id ")):
            return "string"
        return "uri"
    if example.startswith('["'):
        return "string"
    return "any"


# -- 5. overrides and assembly ---------------------------------------------------------------------------------------

SERVICES = ("orders", "production", "materials", "files", "capture", "identity", "notifications", "gateway")
_BOILERPLATE = ("This is a basic API endpoint wrapper", "Base class for service with", "Base Class for service with")
_SENTENCE_STARTERS = (
    "The", "An", "A", "You", "Provided", "Either", "Template", "If", "Workflow", "Cannot", "Order quote", "Run",
    "All", "Invalid", "Wait", "There", "Must", "Cost", "Filtering", "Auto-generated", "Modification", "Slicer",
    "Unable", "Service provider", "Create, edit", "This means", "Editing", "Some", "Could not", "Action",
    "Something", "Requested", "Notifies", "User", "Only", "3DSpark",
)
_MESSAGE_SPLIT = re.compile(r"(?<=[a-z0-9.)\]\"'])\s+(?!You cannot do both)(?=(?:"
                            + "|".join(map(re.escape, _SENTENCE_STARTERS)) + r")\b)")


class Context:
    """What field normalisation needs to know beyond the rows: global read-only names and URI targets."""

    def __init__(self, overrides, resource_names):
        self.readonly_names = set(overrides["readonly_everywhere"]["fields"])
        self.external_urls = set(overrides["external_urls"]["fields"])
        self.aliases = overrides["ref_aliases"]["fields"]
        self.names = set(resource_names)
        self.local_refs = {}

    def reference_for(self, name, spec):
        """The resource a URI field (or a list of URIs) points at: the resource's own `refs`, then the global
        aliases (`user` → users), then a resource named like the field (`printer_type` → printer-type)."""
        if spec["type"] == "uri":
            candidate = name
        elif spec["type"] == "array" and spec.get("items") == "uri":
            candidate = singular(name)
        else:
            return None
        if name in self.local_refs:
            return self.local_refs[name]
        if name in self.aliases:
            return self.aliases[name]
        candidate = candidate.replace("_", "-")
        return candidate if candidate in self.names else None


def singular(name):
    if name.endswith("ies"):
        return name[:-3] + "y"
    if name.endswith(("ches", "shes", "xes")):
        return name[:-2]
    return name[:-1] if name.endswith("s") else name


def service_for(name, resource_overrides, overrides):
    if "service" in resource_overrides:
        return resource_overrides["service"]
    prefixes = overrides["service_prefixes"]["prefixes"]
    matches = [prefix for prefix in prefixes if name == prefix or name.startswith(prefix)]
    if not matches:
        raise ValueError(f"no owning service for resource {name!r}: add it to overrides.json")
    return prefixes[max(matches, key=len)]


def describe(parts):
    """The first sentences of the section prose, skipping the framework's boilerplate docstrings and bare paths, and
    joining lines the scrape hard-wrapped mid-sentence."""
    for role in ("collection", "item", "action"):
        for part in sorted(parts, key=lambda p: p.operation.line):
            if part.role != role:
                continue
            lines = [line.strip() for line in part.operation.prose
                     if not line.startswith(_BOILERPLATE) and not re.fullmatch(r"/\S*", line.strip())]
            if not lines:
                continue
            text = lines[0]
            for line in lines[1:]:
                if text.endswith((".", ":", "!", "?")) or len(text) > 300:
                    break
                text += " " + line
            return _first_sentences(text)
    return ""


def _first_sentences(text, limit=300):
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text.rfind(". ", 0, limit)
    return text[:cut + 1] if cut > 0 else text[:limit].rstrip() + "…"


def documented_errors(parts):
    """(status, message) pairs of every documented 4xx/5xx answer; a cell that lists several messages is split."""
    errors, seen = [], set()
    for part in sorted(parts, key=lambda p: p.operation.line):
        for status, text in part.operation.responses:
            if status < 400:
                continue
            for line in text.split("\n"):
                for message in _MESSAGE_SPLIT.split(line.strip()):
                    message = message.strip()
                    if message.endswith(" raised"):
                        continue  # "RecordNotFound raised": a placeholder, not a message
                    if message and (status, message) not in seen:
                        seen.add((status, message))
                        errors.append((status, message))
    return sorted(errors, key=lambda e: e[0])


def build_fields(parts, resource_overrides, context, lost_names):
    context.local_refs = resource_overrides.get("refs", {})
    fields = {name: normalise_field(name, rows, context) for name, rows in collect_rows(parts, lost_names).items()}
    for name in resource_overrides.get("remove_fields", []):
        fields.pop(name)
    for name, patch in resource_overrides.get("fields", {}).items():
        base = fields.setdefault(name, {"type": "string", "required": False, "readonly": False, "filter_only": False,
                                        "description": ""})
        base.update(patch)
        if "ref" not in patch and "ref" not in base:
            target = context.reference_for(name, base)
            if target:
                base["ref"] = target
    for key, flag, value in (("readonly", "readonly", True), ("writable", "readonly", False),
                             ("filter_only", "filter_only", True), ("required", "required", True)):
        for name in resource_overrides.get(key, []):
            if name not in fields:
                raise ValueError(f"overrides.json: {key} names the unknown field {name!r}")
            fields[name][flag] = value
    for spec in fields.values():
        if spec.get("ref") is None:
            spec.pop("ref", None)
    return fields


def build_actions(draft, resource_overrides, context, lost_names):
    by_path = {}
    for part in draft.parts:
        if part.role == "action":
            by_path.setdefault(part.action, []).append(part)
    actions = []
    patches = resource_overrides.get("actions", {})
    for path in sorted(set(by_path) | set(patches)):
        parts, patch = by_path.get(path, []), patches.get(path, {})
        verbs = {"POST" if p.operation.is_write else "GET" for p in parts}
        actions.append({
            "path": path,
            "verbs": sorted(patch.get("verbs", verbs), key=("GET", "POST", "PUT", "DELETE").index),
            "description": patch.get("description") or describe(parts),
            "fields": build_fields(parts, patch, context, lost_names),
        })
    return actions


def build_verbs(draft, resource_overrides, service, peripheral):
    """Documented verbs, plus PUT/DELETE on the item path of CORE/SUPPORTING resources that can be created (the
    maps' convention: PUT is a partial update, DELETE removes), plus what a map says is implied, minus what a map
    says is blocked (405). Read projections served by the gateway are LIST/GET only."""
    verbs = set(resource_overrides.get("verbs") or documented_verbs(draft.parts))
    if "verbs" not in resource_overrides and draft.name not in peripheral and {"POST", "GET"} <= verbs:
        verbs |= {"PUT", "DELETE"}
    verbs |= set(resource_overrides.get("add_verbs", ()))
    verbs -= set(resource_overrides.get("blocked", ()))
    if service == "gateway":
        verbs &= set(READ_ONLY_VERBS)
    return [verb for verb in VERB_ORDER if verb in verbs]


def build_resource(draft, overrides, context):
    resource_overrides = overrides["resources"].get(draft.name, {})
    lost_names = overrides.get("lost_names", {})
    service = service_for(draft.name, resource_overrides, overrides)
    if service not in SERVICES:
        raise ValueError(f"{draft.name}: unknown service {service!r}")
    peripheral = set(overrides["peripheral"]["resources"])
    verbs = build_verbs(draft, resource_overrides, service, peripheral)
    parts = [p for p in draft.parts if p.role != "action"]
    errors = documented_errors(parts)
    not_found = next((message for status, message in errors if status == 404), None)
    resource = {
        "path": resource_overrides.get("path", draft.path),
        "item_path": None,
        "service": service,
        "verbs": verbs,
        "description": resource_overrides.get("description") or describe(draft.parts),
        "not_found": resource_overrides.get("not_found") or not_found or f"The requested {draft.name} cannot be found.",
        "errors": [{"status": status, "title": title} for status, title in errors if status != 404],
        "required_filters": resource_overrides.get("required_filters", []),
        "default_filters": resource_overrides.get("default_filters", {}),
        "fields": build_fields(parts, resource_overrides, context, lost_names),
        "actions": build_actions(draft, resource_overrides, context, lost_names),
    }
    if not {"POST", "PUT"} & set(verbs):
        for spec in resource["fields"].values():  # nothing can be written: a read projection or a report
            spec["readonly"], spec["required"] = not spec["filter_only"], False
    if {"GET", "PUT", "DELETE"} & set(verbs):
        resource["item_path"] = resource_overrides.get("item_path", resource["path"] + "{uuid}/")
    if resource_overrides.get("special"):
        resource["special"] = True
    for name in resource["required_filters"] + list(resource["default_filters"]):
        if name not in resource["fields"]:
            raise ValueError(f"{draft.name}: filter on unknown field {name!r}")
    return resource


def read_overrides(path=OVERRIDES):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def build(reference=REFERENCE, overrides_path=OVERRIDES):
    """The catalogue as a dict: {"resources": {name: resource}}."""
    overrides = read_overrides(overrides_path)
    # keys starting with "_" are headings that group the resources by map
    overrides["resources"] = {k: v for k, v in overrides["resources"].items() if not k.startswith("_")}
    drafts = group_operations(parse_reference(read_reference(reference)), overrides)
    unknown = set(overrides["resources"]) - set(drafts)
    if unknown:
        raise ValueError(f"overrides.json describes resources the reference does not have: {sorted(unknown)}")
    context = Context(overrides, drafts)
    return {"resources": {name: build_resource(drafts[name], overrides, context) for name in sorted(drafts)}}


def render(catalogue):
    return json.dumps(catalogue, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    text = render(build())
    if "--check" in argv:
        with open(OUTPUT, encoding="utf-8") as handle:
            if handle.read() != text:
                print("shared/catalogue/resources.json is stale: run `python -m tools.catalogue_generate`.")
                return 1
        return 0
    with open(OUTPUT, "w", encoding="utf-8") as handle:
        handle.write(text)
    resources = json.loads(text)["resources"]
    print(f"wrote {OUTPUT}: {len(resources)} resources, "
          f"{sum(len(r['fields']) for r in resources.values())} fields, "
          f"{sum(len(r['actions']) for r in resources.values())} actions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
