"""Who is calling, checked against the read side's credential table (no RPC per request):
a session key (`session` cookie or `Authorization: Bearer`), or an API token as HTTP Basic (uuid:secret).
Sessions end on logout, at their expiry, or after STRATUM_SESSION_IDLE_MINUTES without a request."""
import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from shared.settings import secret_key
from shared.credentials import secret_matches
from shared.errors import Unauthorized

SESSION_COOKIE = "session"
TOUCH_EVERY = timedelta(seconds=60)  # activity is written at most this often per session


@dataclass(frozen=True)
class Caller:
    user: str  # /users/<uuid>/
    bureau: str  # /bureau/<uuid>/
    credential: str  # session or token uuid
    kind: str  # session | token
    platform_admin: bool = False

    @property
    def session(self):
        return self.credential


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
    return caller_for_key(store, key, config, kind)


def caller_for_key(store, key, config, kind="session"):
    if not key:
        raise Unauthorized("Authentication credentials were not provided.")
    credential_uuid, _, secret = key.partition(".")
    row = store.credential(credential_uuid) if secret and len(credential_uuid) == 36 else None
    if row is None or row.kind != kind or row.ended or not secret_matches(row.secret_hash, secret):
        raise Unauthorized("The credentials are not valid; please log in again.")
    now = datetime.now(timezone.utc)
    if row.expires and datetime.fromisoformat(row.expires) <= now:
        raise Unauthorized("The session has expired; please log in again.")
    if kind == "session":
        _check_activity(store, row, now, config)
    return Caller(user=row.user, bureau=row.bureau, credential=credential_uuid, kind=kind,
                  platform_admin=bool(row.platform_admin))


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
