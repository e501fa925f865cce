"""CORS: browser applications served from other origins may call the API when the deployment allows their origin
(STRATUM_CORS_ORIGINS, comma-separated, none by default). Preflights are answered before authentication (browsers
send them without credentials); allowed origins may send credentials (the session cookie) and read the headers a
client needs (Location, X-Upload-Location, …). Other origins get no grant: the browser then refuses the response.
Unsafe cookie-authenticated requests from origins that are not allowed are refused by the Origin check in auth.
"""
from werkzeug.wrappers import Response

ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOWED_HEADERS = ("Content-Type", "Authorization", "Idempotency-Key", "Prefer", "X-CSRF-Token", "X-Requested-With")
EXPOSED_HEADERS = ("Location", "X-Upload-Location", "Model-Location", "Stratum-Ignored-Fields", "Preference-Applied",
                   "Retry-After", "Allow")
PREFLIGHT_CACHE_SECONDS = "600"


def allowed_origins(config):
    return {o.strip().rstrip("/") for o in (config.get("STRATUM_CORS_ORIGINS") or "").split(",") if o.strip()}


def is_preflight(request):
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


def preflight(request, origins):
    """The answer to a preflight: a grant for an allowed origin, a plain 403 for any other."""
    origin = request.headers.get("Origin", "")
    if origin.rstrip("/") not in origins:
        return Response('{"errors":[{"code":"origin-not-allowed","title":"This origin may not call the API '
                        '(see STRATUM_CORS_ORIGINS)."}]}', status=403, mimetype="application/json",
                        headers={"Vary": "Origin"})
    asked = [h.strip() for h in request.headers.get("Access-Control-Request-Headers", "").split(",") if h.strip()]
    allowed = list(ALLOWED_HEADERS) + [h for h in asked if h.lower() not in {a.lower() for a in ALLOWED_HEADERS}
                                       and h.lower().startswith("x-")]
    response = Response(status=204)
    _grant(response, origin)
    response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
    response.headers["Access-Control-Allow-Headers"] = ", ".join(allowed)
    response.headers["Access-Control-Max-Age"] = PREFLIGHT_CACHE_SECONDS
    return response


def grant(request, response, origins):
    """Add the CORS grant to an answer for an allowed origin (nothing for others, or same-origin requests)."""
    origin = request.headers.get("Origin")
    if origin and origin.rstrip("/") in origins:
        _grant(response, origin)
        response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
    return response


def _grant(response, origin):
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Allow-Credentials"] = "true"
    response.headers.add("Vary", "Origin")
