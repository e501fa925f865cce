"""Who is calling, checked against the read side's credential table (no RPC per request):
a session key (`session` cookie or `Authorization: Bearer`), or an API token as HTTP Basic (uuid:secret).
Sessions end on logout, at their expiry, or after STRATUM_SESSION_IDLE_MINUTES without a request.

A browser sends the session cookie with any site's requests, so an unsafe request (POST, PUT, PATCH, DELETE)
authenticated by the cookie must come from the gateway's own origin (STRATUM_BASE_URL or the Host it was sent to) or
one STRATUM_CORS_ORIGINS allows, as its `Origin` (or, without one, `Referer`) says; a request naming neither is not
a browser's cross-site one (curl, scripts) and passes. Bearer keys and API tokens are never sent by a browser on its
own, so they are not checked. (/role/ also wants the session's CSRF token: gateway/service.py.)"""
import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

from gateway import cors
from shared.settings import secret_key
from shared.credentials import secret_matches
from shared.errors import Forbidden, Unauthorized

SESSION_COOKIE = "session"
TOUCH_EVERY = timedelta(seconds=60)  # activity is written at most this often per session


@dataclass(frozen=True)
class Caller:
    user: str  # /users/<uuid>/
    bureau: str  # /bureau/<uuid>/
    credential: str  # session or token uuid
    kind: str  # session | token
    platform_admin: bool = False
    roles: tuple = None  # the user's roles in its bureau, when read with the credential (for a write)

    @property
    def session(self):
        return self.credential


UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def presented_key(request):
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return "session", value.strip()
    if scheme.lower() == "basic":
        try:
            token_uuid, _, secret = base64.b64decode(value.strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise Unauthorized("Malformed HTTP Basic credentials.") from None
        return "token", f"{token_uuid}.{secret}"
    return "session", request.cookies.get(SESSION_COOKIE)


def authenticate(request, store, config):
    kind, key = presented_key(request)
    if key and request.method in UNSAFE_METHODS and _by_cookie(request):
        check_same_origin(request, config)  # before the key is looked at: a forged request does not count as activity
    return caller_for_key(store, key, config, kind, with_roles=request.method in UNSAFE_METHODS)


def _by_cookie(request):
    scheme = request.headers.get("Authorization", "").partition(" ")[0].lower()
    return scheme not in ("bearer", "basic")


def check_same_origin(request, config):
    """403 for a request from another site's page (cross-site request forgery), see the module's docstring."""
    claimed = request.headers.get("Origin")
    if claimed is None:
        referer = request.headers.get("Referer")
        if not referer:
            return
        claimed = origin_of(referer) or referer
    if origin_of(claimed) not in allowed_origins(request, config):
        raise Forbidden(
            f"This cross-origin request was refused: it is authenticated by the session cookie and comes from "
            f"'{claimed}', which is not this site's origin nor one STRATUM_CORS_ORIGINS allows. Send it from "
            "Stratum's own pages, or authenticate with a Bearer session key or an API token.")


def allowed_origins(request, config):
    """The gateway's own origin (STRATUM_BASE_URL; the Host the request was sent to, by either scheme, since TLS
    may end at a proxy) and the origins STRATUM_CORS_ORIGINS lists (comma-separated)."""
    own = [config.get("STRATUM_BASE_URL") or ""]
    if request.host:
        own += [f"http://{request.host}", f"https://{request.host}"]
    return {origin for origin in map(origin_of, own + sorted(cors.allowed_origins(config))) if origin}


def origin_of(url):
    """`scheme://host[:port]` of a URL, lower-cased and without the scheme's default port; None when it has none
    (a browser's opaque origin "null", a relative or malformed URL)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not scheme or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{scheme}://{host}" + (f":{port}" if port and port != _DEFAULT_PORTS.get(scheme) else "")


def caller_for_key(store, key, config, kind="session", with_roles=False):
    """The Caller the key belongs to; `with_roles`: with its roles (a write needs them, a read seldom does)."""
    if not key:
        raise Unauthorized("Authentication credentials were not provided.")
    credential_uuid, _, secret = key.partition(".")
    row = store.credential(credential_uuid, with_roles) if secret and len(credential_uuid) == 36 else None
    if row is None or row.kind != kind or row.ended or not secret_matches(row.secret_hash, secret):
        raise Unauthorized("The credentials are not valid; please log in again.")
    now = datetime.now(timezone.utc)
    if row.expires and datetime.fromisoformat(row.expires) <= now:
        raise Unauthorized("The session has expired; please log in again.")
    if kind == "session":
        _check_activity(store, row, now, config)
    return Caller(user=row.user, bureau=row.bureau, credential=credential_uuid, kind=kind,
                  platform_admin=bool(row.platform_admin), roles=row.roles if with_roles else None)


def _check_activity(store, row, now, config):
    idle = timedelta(minutes=float(config.get("STRATUM_SESSION_IDLE_MINUTES") or 480))
    last_seen = datetime.fromisoformat(row.last_seen) if row.last_seen else None
    if last_seen is not None and now - last_seen > idle:
        raise Unauthorized("The session ended after a period of inactivity; please log in again.")
    if last_seen is None or now - last_seen > TOUCH_EVERY:
        store.touch_session(row.uuid, now.isoformat())


def csrf_token(config, caller):
    """Stateless CSRF token: an HMAC of the session id with the deployment's secret key (verified by recomputing)."""
    return hmac.new(secret_key(config), caller.credential.encode(), hashlib.sha256).hexdigest()


def csrf_valid(config, caller, token):
    # compared as bytes: compare_digest refuses str with non-ASCII characters (a client's token may hold any)
    return isinstance(token, str) and hmac.compare_digest(token.encode("utf-8", "surrogatepass"),
                                                          csrf_token(config, caller).encode())
