"""Identity commands: bootstrap of the first bureau and manager, login with lock-out, and the creation rules of
bureaus (unique name, own group), users (hashed password, unique login names) and API tokens (generated secret)."""
import secrets
from datetime import datetime, timedelta, timezone
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from services.identity.domain import (ApiToken, Bureau, Role, Session, User, hash_password, login_key,
                                      password_matches)
from shared.application import ResourceApplication
from shared.credentials import hash_secret, new_secret
from shared.errors import TooManyRequests, Unauthorized
from shared.generic import aggregates_for, generic_resource
from shared.resource import UniqueKey
from shared.uris import parse_uri, resource_path

SESSION_LIFETIME = timedelta(days=7)
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))  # verify against it when the user is unknown: same timing


class Identity(ResourceApplication):
    name = "identity"
    aggregates = aggregates_for("identity", {"bureau": Bureau, "users": User, "sessions": Session,
                                             "api_tokens": ApiToken, "role": Role})

    # -- creation rules -----------------------------------------------------------------------------------------

    def create(self, resource_name, payload, ctx):
        if resource_name == "bureau" and not payload.get("group"):
            # capture-and-platform.md D1: a bureau needs a group; creating one makes its members' group.
            group_id = uuid5(NAMESPACE_URL, f"stratum:bureau-group:{ctx.get('command_id') or uuid4()}")
            payload = dict(payload, group=resource_path("groups", group_id))
        return super().create(resource_name, payload, ctx)

    def tenant_of(self, resource_name, new_id, fields, ctx):
        if resource_name == "bureau":
            return resource_path("bureau", new_id)  # a bureau is its own tenant
        return super().tenant_of(resource_name, new_id, fields, ctx)

    def on_create(self, resource_name, new_id, fields, ctx):
        if resource_name == "users":
            names = {login_key(n) for n in (fields.get("username"), fields.get("email")) if n}
            claims = [self.claim_unique("login", name, {"user_id": str(new_id)},
                                        f"'{name}' is already in use by another account.", "username")
                      for name in sorted(names)]
            return fields, claims, {}
        if resource_name == "bureau":
            claim = self.claim_unique("bureau-name", login_key(fields["name"]), {"bureau_id": str(new_id)},
                                      "The requested bureau name already exists.", "name")
            return dict(fields, user=ctx.get("user")), [claim, *self._group_for(fields, new_id, ctx)], {}
        if resource_name == "api_tokens":
            secret = new_secret()
            fields.update(uuid=str(new_id), user_uuid=parse_uri(ctx["user"])[1], secret_hash=hash_secret(secret),
                          platform_admin=bool(ctx.get("platform_admin")))
            return fields, [], {"uuid": str(new_id), "secret": secret}
        return fields, [], {}

    def _group_for(self, fields, bureau_id, ctx):
        group_id = UUID(parse_uri(fields["group"])[1])
        try:
            self.repository.get(group_id)
            return []
        except AggregateNotFoundError:
            group = generic_resource("groups").create(
                group_id, {"name": f"{fields['name']} members", "description": f"Members of {fields['name']}",
                           "subgroups": []}, resource_path("bureau", bureau_id), ctx.get("user"))
            return [group]

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
        group_path = resource_path("groups", uuid5(NAMESPACE_URL, f"stratum:bureau-group:{bureau_id}"))
        bureau_fields = {"name": bureau_name, "description": None, "group": group_path, "reply_to": email,
                         "order_banner": {}, "notifications": {}, "user": user_path}
        bureau = Bureau.create(bureau_id, bureau_fields, bureau_path, None)
        user = User.create(user_id, {"username": email, "email": email, "emails": [email], "name": "Administrator",
                                     "bureau": bureau_path, "archived": False, "platform_admin": True,
                                     "password": password or generated}, bureau_path, None)
        role = Role.create(
            uuid5(NAMESPACE_URL, f"stratum:bootstrap-role:{email}"),
            {"bureau": bureau_path, "user": user_path, "role": "manager", "username": email}, bureau_path, None)
        aggregates = [bureau, user, role, *self._group_for(bureau_fields, bureau_id, {"user": None}),
                      UniqueKey.claim("login", login_key(email), {"user_id": str(user_id)}),
                      UniqueKey.claim("bureau-name", login_key(bureau_name), {"bureau_id": str(bureau_id)})]
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
