"""Identity commands: bootstrap of the first bureau and manager, login with lock-out, and the creation rules of
bureaus (unique name, own group), users (hashed password, unique login names) and API tokens (generated secret)."""
import secrets
from datetime import datetime, timedelta, timezone
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from services.identity.domain import (RESET_REFUSED, ApiToken, Bureau, PasswordResetRequests, Role, Session, User,
                                      hash_password, login_key, login_names, password_matches, password_reset_token,
                                      user_of_reset_token)
from shared.application import ResourceApplication, Unit
from shared.credentials import hash_secret, new_secret
from shared.errors import InvalidPayload, TooManyRequests, Unauthorized
from shared.registry import resource_classes
from shared.resource import UniqueKey
from shared.uris import resource_path

SESSION_LIFETIME = timedelta(days=7)
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))  # verify against it when the user is unknown: same timing


class Identity(ResourceApplication):
    name = "identity"
    aggregates = resource_classes("identity", [Bureau, User, Session, ApiToken, Role])
    # the notifications service finds a bureau's settings row by its bureau
    indexed_references = (("bureau-settings", "bureau"),)

    secret_key = None  # set by the service from its config (shared.settings.secret_key): signs reset tokens

    # -- bootstrap and login ------------------------------------------------------------------------------------

    def bootstrap(self, email, password, bureau_name):
        """On an empty store, create the first bureau and its manager. Returns the generated password (None when
        one was given or the store was not empty). Deterministic ids make concurrent bootstraps harmless."""
        if self.recorder.max_notification_id():
            return None
        generated = None if password else secrets.token_urlsafe(12)
        bureau_id = Bureau.id_for_name(bureau_name)
        bureau_path = resource_path("bureau", bureau_id)
        user_id = User.id_for_bootstrap(email)
        user_path = resource_path("users", user_id)
        group_path = resource_path("groups", Bureau.group_id(bureau_id))
        bureau_fields = {"name": bureau_name, "description": None, "group": group_path, "reply_to": email,
                         "order_banner": {}, "notifications": {}, "user": user_path}
        bureau = Bureau.create(bureau_id, bureau_fields, bureau_path, None)
        user = User.create(user_id, {"username": email, "email": email, "emails": [email], "name": "Administrator",
                                     "bureau": bureau_path, "archived": False, "platform_admin": True,
                                     "password": password or generated}, bureau_path, None)
        role = Role.create(
            uuid5(NAMESPACE_URL, f"stratum:bootstrap-role:{email}"),
            {"bureau": bureau_path, "user": user_path, "role": "manager", "username": email}, bureau_path, None)
        settings = self.aggregates["bureau-settings"].create(Bureau.settings_id(bureau_id),
                                                             Bureau.initial_settings(bureau_id), bureau_path, None)
        aggregates = [bureau, user, role, settings, *Bureau.members_group(Unit(self, {}), bureau_fields, bureau_id),
                      *(UniqueKey.claim("login", name, {"user_id": str(user_id)}) for name in login_names(user.fields)),
                      UniqueKey.claim("bureau-name", login_key(bureau_name), {"bureau_id": str(bureau_id)})]
        aggregates += self._index_entries(aggregates)
        try:
            self.save(*aggregates)
        except IntegrityError:
            return None
        return generated

    def login(self, username, password):
        now = datetime.now(timezone.utc)
        user = self._user_for_login(username)
        if user is None:
            raise Unauthorized("Invalid username or password.")
        locked = user.blocked_for(now)
        if locked:
            raise TooManyRequests("This account is locked after too many failed logins; try again later.",
                                  retry_after=locked)
        if not user.check_password(password):
            user.login_failed(now)
            self.save(user)
            raise Unauthorized("Invalid username or password.")
        user.login_succeeded()
        secret = new_secret()
        user_path = resource_path("users", user.id)
        session = Session.create(uuid4(), {"user": user_path, "secret_hash": hash_secret(secret),
                                           "expires": (now + SESSION_LIFETIME).isoformat(),
                                           "platform_admin": bool(user.fields.get("platform_admin"))},
                                 user.bureau, user_path)
        recordings = self.save(user, session)
        return {
            "uri": resource_path("sessions", session.id),
            "session_key": f"{session.id}.{secret}",
            "application": self.name,
            "position": recordings[-1].notification.id,
        }

    def _user_for_login(self, username):
        try:
            index = self.repository.get(UniqueKey.id_for("login", login_key(username)))
            return self.repository.get(UUID(index.value["user_id"]))
        except AggregateNotFoundError:
            password_matches(_DUMMY_HASH, "not the password")
            return None

    # -- password reset (capture-and-platform.md C4; the mail is the notifications service's, from this feed) --------

    def request_password_reset(self, login, now=None):
        """Grant a reset request for this login name, known or not: at most PasswordResetRequests.PER_HOUR an hour
        pass for one address. A known and an unknown address do the same work here (the login index read, the
        address's requests read, one event saved, a nonce made), so the time it takes tells nobody whether an
        account exists; the account's side follows in the background (apply_password_reset). Returns the
        recording's result with the requests' id (`requests`), or None when the limit refused it (nothing
        recorded). The gateway answers the same in every case."""
        now = now or datetime.now(timezone.utc)
        for _ in range(3):  # a concurrent request for the same address: read it again and decide again
            user_id = self._user_id_of_login(login)
            key = f"user:{user_id}" if user_id is not None else f"login:{login_key(login)}"
            try:
                requests = self.repository.get(PasswordResetRequests.id_for(key))
            except AggregateNotFoundError:
                requests = PasswordResetRequests.start(key)
            if not requests.grant(now, user_id, secrets.token_urlsafe(24)):
                return None
            try:
                recordings = self.save(requests)
            except IntegrityError:
                continue
            return {"application": self.name, "position": recordings[-1].notification.id,
                    "requests": str(requests.id)}
        return None

    def apply_password_reset(self, requests_id):
        """The account's side of a granted request (background; idempotent): the user records the reset request
        (UserPasswordResetRequested: the notifications service mails the token) unless it is archived or asked
        within User.RESET_INTERVAL. Returns the recording's result with `mailed`, or None when nothing waited."""
        for _ in range(3):
            try:
                requests = self.repository.get(UUID(str(requests_id)))
            except (AggregateNotFoundError, ValueError):
                return None
            pending = requests.pending if isinstance(requests, PasswordResetRequests) else None
            if pending is None:
                return None
            try:
                user = self.repository.get(UUID(pending["user"]))
            except AggregateNotFoundError:
                user = None
            mailed = isinstance(user, User) and user.request_password_reset(datetime.fromisoformat(pending["at"]),
                                                                            pending["nonce"])
            requests.applied(pending["at"])
            try:
                recordings = self.save(requests, *([user] if mailed else []))
            except IntegrityError:
                continue
            return {"application": self.name, "position": recordings[-1].notification.id, "mailed": mailed}
        return None

    def _user_id_of_login(self, login):
        try:
            return UUID(self.repository.get(UniqueKey.id_for("login", login_key(login))).value["user_id"])
        except AggregateNotFoundError:
            return None

    def reset_password(self, token, password):
        """Set a new password with a mailed token (single use, expiring); 400 for any token that does not work."""
        user_id = user_of_reset_token(token)
        try:
            user = self.repository.get(user_id) if user_id else None
        except AggregateNotFoundError:
            user = None
        if not isinstance(user, User):
            raise InvalidPayload(RESET_REFUSED, field="token")
        user.reset_password(datetime.now(timezone.utc), self.secret_key, token, password)
        recordings = self.save(user)
        return {"uri": resource_path("users", user.id), "application": self.name,
                "position": recordings[-1].notification.id}

    def password_reset_token(self, user_id):
        """For the notifications service, when it sends the reset mail: the token of the user's pending request and
        when it expires, or None when there is none any more (used, replaced by a newer one, expired)."""
        try:
            user = self.repository.get(UUID(str(user_id)))
        except (AggregateNotFoundError, ValueError):
            return None
        pending = user.pending_reset(datetime.now(timezone.utc)) if isinstance(user, User) else None
        if pending is None:
            return None
        return {"token": password_reset_token(self.secret_key, user.id, pending["nonce"]),
                "expires": pending["expires"]}
