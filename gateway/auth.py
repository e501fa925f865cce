"""Who is calling: a session key from the `session` cookie or an `Authorization: Bearer` header, checked against
the read side's session table (no RPC per request)."""
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from shared.credentials import secret_matches
from shared.errors import Unauthorized

SESSION_COOKIE = "session"


@dataclass(frozen=True)
class Caller:
    user: str  # /users/<uuid>/
    bureau: str  # /bureau/<uuid>/
    session: str  # session uuid


def session_key(request):
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(SESSION_COOKIE)


def authenticate(request, store):
    return caller_for_key(store, session_key(request))


def caller_for_key(store, key):
    if not key:
        raise Unauthorized("Authentication credentials were not provided.")
    session_uuid, _, secret = key.partition(".")
    row = store.session(session_uuid) if secret else None
    if row is None or row.ended or not secret_matches(row.secret_hash, secret):
        raise Unauthorized("The session is not valid; please log in again.")
    if datetime.fromisoformat(row.expires) <= datetime.now(timezone.utc):
        raise Unauthorized("The session has expired; please log in again.")
    return Caller(user=row.user, bureau=row.bureau, session=session_uuid)


def csrf_token(config, caller):
    """Stateless CSRF token: an HMAC of the session id with the deployment's secret key (verified by recomputing)."""
    return hmac.new(secret_key(config), caller.session.encode(), hashlib.sha256).hexdigest()


def secret_key(config):
    """STRATUM_SECRET_KEY, or a key generated once and kept in the data directory (shared by local processes)."""
    if config.get("STRATUM_SECRET_KEY"):
        return config["STRATUM_SECRET_KEY"].encode()
    path = os.path.join(config["STRATUM_DATA_DIR"], "secret-key")
    if not os.path.exists(path):
        os.makedirs(config["STRATUM_DATA_DIR"], exist_ok=True)
        try:
            with open(path, "x") as handle:
                handle.write(secrets.token_hex(32))
        except FileExistsError:
            pass  # another process wrote it first
    with open(path) as handle:
        return handle.read().strip().encode()
