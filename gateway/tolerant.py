"""The tolerant reader: a payload from a client of any vintage is read for what it unambiguously means.

Clients written against older or newer versions of the reference, and web forms that send every field they show,
would otherwise fail whole saves over details that mean nothing to Stratum. So, by default:
- a field the catalogue does not know is ignored (not stored) and named back in `Stratum-Ignored-Fields`;
- an older name of a field (shared/catalogue/aliases.json), or the same name with `-` for `_` or back, is read as
  today's field;
- a read-only field sent back unchanged (a form re-sending `uri`, `created`, `status`) is dropped silently; one sent
  with another value is refused, since the client believes something that is not so;
- `""` on an optional field means what `null` means there: unset (a cleared text box; for a few fields null has a
  meaning of its own, e.g. a model's `file_unit: null` asks for autodetection); a number typed as a string is that
  number.
Anything ambiguous is left to validation, which answers 400 naming the field. `Prefer: handling=strict` (RFC 7240),
or STRATUM_STRICT_FIELDS=1 for a whole deployment, turns all of this off: unknown fields are 400 as before.
"""
import json
import os
from datetime import datetime
from functools import lru_cache

from shared import uris
from shared.errors import InvalidPayload

_ALIASES = os.path.join(os.path.dirname(__file__), "..", "shared", "catalogue", "aliases.json")


def wants_strict(request, config):
    """Strict handling for this request: asked for by the client, or the deployment's default."""
    preferences = ",".join(request.headers.getlist("Prefer")).replace(" ", "").lower().split(",")
    if "handling=strict" in preferences:
        return True
    if "handling=lenient" in preferences:
        return False
    return str(config.get("STRATUM_STRICT_FIELDS", "")).lower() in ("1", "true", "yes")


def read(spec, payload, *, strict, current=None):
    """(payload to validate, names of the fields ignored). `current` is the stored document on a PUT."""
    if strict or not isinstance(payload, dict):
        return payload, []
    cleaned, ignored = {}, []
    for sent_name, value in payload.items():
        name = _known_name(spec, sent_name)
        field = spec.fields.get(name) if name else None
        if field is None:
            ignored.append(sent_name)
            continue
        if field.filter_only:
            continue  # documented, shown in lists, set by nobody: a form re-sends it, nothing is lost
        if field.readonly:
            if current is not None and name in current and not _same(field, current[name], value):
                raise InvalidPayload(f"'{name}' is read-only: it cannot be changed from {current[name]!r}.",
                                     field=name)
            continue  # sent back as it was (or on a POST, where the system sets it)
        cleaned[name] = _forgiving(field, value)
    return cleaned, ignored


def _known_name(spec, sent_name):
    if sent_name in spec.fields:
        return sent_name
    alias = aliases().get(spec.name, {}).get(sent_name)
    if alias:
        return alias
    for variant in (sent_name.replace("-", "_"), sent_name.replace("_", "-")):
        if variant in spec.fields:
            return variant
    return None


def _forgiving(field, value):
    if field.type in ("integer", "number") and isinstance(value, str) and value.strip():
        return _number(field.type, value.strip(), value)
    if field.required:
        return value  # a required field left empty stays an error that names it
    return None if value == "" else value  # a cleared box is null, as a client sending null means


def _number(type_name, text, original):
    try:
        number = int(text) if type_name == "integer" else float(text)
    except ValueError:
        return original  # not a number: validation says so
    return number


def _same(field, stored, sent):
    if stored == sent:
        return True
    try:
        if field.type == "uri":
            return uris.normalise(sent) == uris.normalise(stored)
        if field.type == "datetime":
            return datetime.fromisoformat(str(sent)) == datetime.fromisoformat(str(stored))
    except (TypeError, ValueError):
        return False
    return False


@lru_cache(maxsize=1)
def aliases():
    with open(_ALIASES) as handle:
        data = json.load(handle)
    return {resource: {old: new for old, new in names.items() if not old.startswith("_")}
            for resource, names in data.items() if not resource.startswith("_")}
