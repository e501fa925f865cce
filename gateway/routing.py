"""URL routing built from the catalogue: every resource's collection path, item path and per-uuid action paths.

One werkzeug Map for all of them, so a resource added to the catalogue is routed with no code (including paths of
several segments such as /guideline/for-process-step/ and actions such as /order/{uuid}/clone/).
"""
import re
from dataclasses import dataclass
from functools import lru_cache

from werkzeug.exceptions import NotFound as NoRoute
from werkzeug.routing import Map, Rule

from shared import catalogue
from shared.errors import NotFound


@dataclass(frozen=True)
class Route:
    shape: str  # "collection", "item" or "action"
    resource: str
    action: str | None = None


_HANDLED_ELSEWHERE = {"about", "sessions", "csrf-token"}  # their own @http handlers in gateway.service


def _rule(path, route):
    return Rule(re.sub(r"\{(\w+)\}", r"<\1>", path), endpoint=route)


@lru_cache(maxsize=None)
def url_map():
    rules = []
    for spec in catalogue.catalogue().values():
        if spec.name in _HANDLED_ELSEWHERE:
            continue
        rules.append(_rule(spec.path, Route("collection", spec.name)))
        if spec.item_path:
            rules.append(_rule(spec.item_path, Route("item", spec.name)))
        for action in spec.actions:
            rules.append(_rule(action.path, Route("action", spec.name, action.name)))
    return Map(rules, strict_slashes=False, merge_slashes=False)


def match(path):
    """(Route, path parameters) for a request path; unknown paths are a JSON 404."""
    try:
        route, values = url_map().bind("localhost").match(path)
    except NoRoute:
        raise NotFound(f"There is no resource at {path}.") from None
    return route, values
