"""How an audit_log row's `changes` holds the fields one event changed: a JSON array of one entry per field, in the
order of the row's /event/ items (gateway.tables.audit_log), written without whitespace.

An entry is [key, previous, current], or [key, current] when there was no previous value (every field of a creation,
most of the log). Rows of earlier releases hold only the three-element form, and read the same."""
import json


def entry(key, previous, current):
    return [key, current] if previous is None else [key, previous, current]


def values(stored):
    """(key, previous, current) of a stored entry, either form."""
    if len(stored) == 2:
        return stored[0], None, stored[1]
    return tuple(stored)


def encoded(entries):
    """The column's JSON text: no spaces after separators (3 bytes an entry that PostgreSQL's rendering and
    json.dumps would add)."""
    return json.dumps(entries, separators=(",", ":"))
