"""Identity aggregates. Secrets are stored only as hashes and never leave this service (private_fields),
except a session's secret hash, which the gateway needs to authenticate requests from its read side."""
import base64
import hashlib
import hmac
from datetime import datetime, timedelta
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventsourcing.domain import Aggregate

from shared import catalogue
from shared.access import OWNED_BY_USER
from shared.credentials import hash_secret, new_secret
from shared.errors import InvalidPayload, NotFound
from shared.resource import Resource
from shared.topics import name_aggregate
from shared.uris import parse_uri, resource_path, uuid_of

_hasher = PasswordHasher()


def hash_password(password):
    return _hasher.hash(password)


def password_matches(password_hash, password):
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class Bureau(Resource):
    resource = "bureau"

    @staticmethod
    def id_for_name(name):
        return uuid5(NAMESPACE_URL, f"stratum:bureau:{name.strip().lower()}")

    @staticmethod
    def group_id(seed):
        return uuid5(NAMESPACE_URL, f"stratum:bureau-group:{seed}")

    @classmethod
    def prepare(cls, payload, ctx):
        """capture-and-platform.md D1: a bureau needs a group; creating one makes its members' group."""
        if payload.get("group"):
            return payload
        return dict(payload, group=resource_path("groups", cls.group_id(ctx.get("command_id") or uuid4())))

    @classmethod
    def tenant_of(cls, new_id, fields, ctx):
        return resource_path("bureau", new_id)  # a bureau is its own tenant

    @classmethod
    def on_create(cls, unit, new_id, fields):
        """A bureau's name is unique; its members' group is made with it."""
        claim = unit.claim_unique("bureau-name", login_key(fields["name"]), {"bureau_id": str(new_id)},
                                  "The requested bureau name already exists.", "name")
        return dict(fields, user=unit.actor), [claim, *cls.members_group(unit, fields, new_id),
                                               unit.new("bureau-settings", cls.settings_id(new_id),
                                                        cls.initial_settings(new_id),
                                                        resource_path("bureau", new_id))], {}

    @staticmethod
    def settings_id(bureau_id):
        return uuid5(NAMESPACE_URL, f"stratum:bureau-settings:{bureau_id}")

    @staticmethod
    def initial_settings(bureau_id):
        """capture-and-platform.md D2: one settings row per bureau, made with it (the resource has no POST). The map
        gives no defaults: every notification bitmask starts at 0 (nobody) until a manager sets it."""
        return {"bureau": resource_path("bureau", bureau_id), "notification_custom_emails": []}

    @staticmethod
    def members_group(unit, fields, bureau_id):
        """The group named by the bureau's `group`, created when it does not exist yet."""
        group_path = fields["group"]
        if unit.get(group_path) is not None:
            return []
        return [unit.new("groups", UUID(parse_uri(group_path)[1]),
                         {"name": f"{fields['name']} members", "description": f"Members of {fields['name']}",
                          "subgroups": []}, resource_path("bureau", bureau_id))]


RESET_REFUSED = "This password reset token is invalid, was already used, or has expired; request a new one."


def password_reset_token(key, user_id, nonce):
    """The token a password-reset mail carries: `<user uuid>.<HMAC(secret key, user, nonce)>`. It is derived, never
    stored: identity keeps only the request's random nonce (a private field), so neither the event store, the read
    side nor the notification record holds a usable token; only the mail does."""
    mac = hmac.new(key, f"stratum:password-reset:{user_id}:{nonce}".encode(), hashlib.sha256).digest()
    return f"{user_id}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


class PasswordResetRequests(Aggregate):
    """The password resets granted for one address in the last hour: at most PER_HOUR pass, so nobody mails an
    inbox full of reset mails. One per account when the address names one, else one per address as typed (login
    key): a known and an unknown address are limited alike, and a request that passes records one event here
    either way, so the two paths do the same work (the account's own side, the user's PasswordResetRequested that
    makes the mail, follows in the background: `pending` until it is applied). Not a resource: never in the feed,
    nor on the read side."""

    PER_HOUR = 3
    WINDOW = timedelta(hours=1)

    class Started(Aggregate.Created):
        key: str

    class Granted(Aggregate.Event):
        at: str
        user: str | None  # the account's uuid; None for an address that names none
        nonce: str  # the reset's nonce, made for both alike (the user's side uses it)

        def apply(self, aggregate):
            at = datetime.fromisoformat(self.at)
            aggregate.granted = [t for t in aggregate.granted if at - datetime.fromisoformat(t) < aggregate.WINDOW]
            aggregate.granted.append(self.at)
            aggregate.pending = {"at": self.at, "user": self.user, "nonce": self.nonce} if self.user else None

    class Applied(Aggregate.Event):
        """The user's side of the request granted `at` is recorded (or was refused by the user's own rules)."""
        at: str

        def apply(self, aggregate):
            if aggregate.pending and aggregate.pending["at"] == self.at:
                aggregate.pending = None

    def __init__(self, key):
        self.key = key
        self.granted = []
        self.pending = None

    @classmethod
    def id_for(cls, key):
        return uuid5(NAMESPACE_URL, f"stratum:password-reset-requests:{key}")

    @classmethod
    def start(cls, key):
        return cls._create(cls.Started, id=cls.id_for(key), key=key)

    def grant(self, now, user_id, nonce):
        """Count a request at `now`; False (nothing recorded) when PER_HOUR were granted within the hour."""
        recent = [t for t in self.granted if now - datetime.fromisoformat(t) < self.WINDOW]
        if len(recent) >= self.PER_HOUR:
            return False
        self.trigger_event(self.Granted, at=now.isoformat(), user=str(user_id) if user_id else None, nonce=nonce)
        return True

    def applied(self, at):
        self.trigger_event(self.Applied, at=at)


name_aggregate(PasswordResetRequests, "identity/password-reset-requests")


def user_of_reset_token(token):
    """The user uuid a reset token names (None for a token of another shape)."""
    if not isinstance(token, str) or token.count(".") != 1:
        return None
    try:
        return UUID(token.partition(".")[0])
    except ValueError:
        return None


class User(Resource):
    resource = "users"
    private_fields = ("password_hash", "failed_logins", "password_reset")
    MAX_FAILED_LOGINS = 5
    LOCK_OUT = timedelta(minutes=15)
    RESET_LIFETIME = timedelta(hours=1)  # a reset token expires this long after it was requested
    RESET_INTERVAL = timedelta(seconds=60)  # requests closer together send no new mail (no mail bombing)

    class BlockedForLogin(Resource.Updated):
        """capture-and-platform.md C1: UserBlockedForLogin{until} (the notification service mails the user)."""
        field = "blocked_until"

    class PasswordResetRequested(Resource.Updated):
        """C4: UserPasswordResetRequested. The change (nonce, times) is private: the feed carries only the name."""
        field = "password_reset"

    @classmethod
    def named_change(cls, key, value):
        # an unblock, or a reset request used up, is a plain update: only a lock and a request are named facts
        if key in ("blocked_until", "password_reset") and not value:
            return None
        return super().named_change(key, value)

    @staticmethod
    def id_for_bootstrap(email):
        return uuid5(NAMESPACE_URL, f"stratum:bootstrap-user:{email.strip().lower()}")

    class PasswordChanged(Resource.Updated):
        field = "password_hash"

    class Archived(Resource.Updated):
        field = "archived"
        value = True

    @classmethod
    def create(cls, id, fields, bureau, actor):
        fields = _hashing_password(dict(fields, uuid=str(id)))
        return super().create(id, fields, bureau, actor)

    @classmethod
    def on_create(cls, unit, new_id, fields):
        """Every login name (username, e-mail, and each of `emails`) is unique and finds this user."""
        claims = [unit.claim_unique("login", name, {"user_id": str(new_id)},
                                    f"'{name}' is already in use by another account.", "username")
                  for name in sorted(login_names(fields))]
        return fields, claims, {}

    def update(self, changes, actor):
        super().update(_hashing_password(dict(changes)), actor)

    def check_password(self, password):
        return not self.deleted and not self.fields.get("archived") and password_matches(
            self.fields.get("password_hash") or "", password
        )

    def blocked_for(self, now):
        """Seconds this account stays locked out (0 when it may log in)."""
        until = self.fields.get("blocked_until")
        return max(0, int((datetime.fromisoformat(until) - now).total_seconds()) + 1) if until else 0

    def login_failed(self, now):
        """Count a failed login; the fifth in a row locks the account for LOCK_OUT (capabilities map: blocked_until)."""
        failures = (self.fields.get("failed_logins") or 0) + 1
        if failures >= self.MAX_FAILED_LOGINS:
            self.update({"failed_logins": 0, "blocked_until": (now + self.LOCK_OUT).isoformat()}, None)
        else:
            self.update({"failed_logins": failures}, None)

    def request_password_reset(self, now, nonce):
        """C4: a password reset is requested. Nothing is recorded (so no mail is sent) for an archived user, or
        within RESET_INTERVAL of the previous request; the caller answers the same either way. Returns whether a
        request was recorded. A new request replaces the previous one (its token stops working)."""
        if self.deleted or self.fields.get("archived"):
            return False
        previous = self.fields.get("password_reset") or {}
        if previous and now < datetime.fromisoformat(previous["requested"]) + self.RESET_INTERVAL:
            return False
        self.update({"password_reset": {"nonce": nonce, "requested": now.isoformat(),
                                        "expires": (now + self.RESET_LIFETIME).isoformat()}}, None)
        return True

    def pending_reset(self, now):
        """The password reset that may still be used ({nonce, requested, expires}), or None."""
        pending = self.fields.get("password_reset")
        if not pending or self.deleted or self.fields.get("archived"):
            return None
        return pending if now < datetime.fromisoformat(pending["expires"]) else None

    def reset_password(self, now, key, token, password):
        """Set a new password with the mailed token: single use (the request is cleared with the change), expiring,
        and only the latest request's token works. It also lifts a lock-out: the mailbox owner proved who they are.
        A wrong, used or expired token is one 400 that says no more."""
        pending = self.pending_reset(now)
        if pending is None or not isinstance(token, str) or not hmac.compare_digest(
                password_reset_token(key, self.id, pending["nonce"]).encode(), token.encode()):
            raise InvalidPayload(RESET_REFUSED, field="token")
        if not isinstance(password, str) or not password:
            raise InvalidPayload("The field 'password' is required.", field="password")
        self.update({"password": password, "password_reset": None, "failed_logins": 0, "blocked_until": None}, None)

    def login_succeeded(self):
        if self.fields.get("failed_logins") or self.fields.get("blocked_until"):
            self.update({"failed_logins": 0, "blocked_until": None}, None)


def _hashing_password(fields):
    """A password is never stored: only its argon2 hash (write-only field)."""
    password = fields.pop("password", None)
    if password:
        fields["password_hash"] = hash_password(password)
    return fields


class ApiToken(Resource):
    """An API token: `uuid` and a generated secret, used as HTTP Basic credentials. Only the secret's hash is
    stored; it reaches the gateway's credential table, never a document or the audit log."""

    resource = "api_tokens"

    @classmethod
    def on_create(cls, unit, new_id, fields):
        """The secret is generated here and shown once, in the command's result; only its hash is kept."""
        secret = new_secret()
        fields.update(uuid=str(new_id), user_uuid=parse_uri(unit.actor)[1], secret_hash=hash_secret(secret),
                      platform_admin=bool(unit.ctx.get("platform_admin")))
        return fields, [], {"uuid": str(new_id), "secret": secret}

    def check_deletable(self, unit):
        """Only the token's owner revokes it (platform administrators excepted); to anyone else it does not exist,
        as it does not on the read side (shared.access.OWNED_BY_USER)."""
        if not unit.ctx.get("platform_admin") and self.fields.get(OWNED_BY_USER[self.resource]) != uuid_of(unit.actor):
            raise NotFound(catalogue.resource(self.resource).not_found)


class Role(Resource):
    """A user's role in a bureau. The CSRF token that authorised a change is checked by the gateway, never kept."""

    resource = "role"

    @classmethod
    def create(cls, id, fields, bureau, actor):
        return super().create(id, _without_csrf(fields), bureau, actor)

    def update(self, changes, actor):
        super().update(_without_csrf(changes), actor)


def _without_csrf(fields):
    return {k: v for k, v in fields.items() if k != "csrf_token"}


class Session(Resource):
    resource = "sessions"


def login_key(login_name):
    """Usernames and e-mails are unique and found case-insensitively (see UniqueKey "login")."""
    return login_name.strip().lower()


def login_names(fields):
    """The names a user logs in with: the username, the e-mail, and every address in the reference's `emails`."""
    names = [fields.get("username"), fields.get("email"), *(fields.get("emails") or [])]
    return {login_key(n) for n in names if isinstance(n, str) and n.strip()}
