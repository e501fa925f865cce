"""Identity commands: bootstrap of the first bureau and manager, login, and the generic resource commands."""
import secrets
from datetime import datetime, timedelta, timezone
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from services.identity.domain import Bureau, Session, User, hash_password, login_key, password_matches
from shared.application import ResourceApplication
from shared.credentials import hash_secret, new_secret
from shared.errors import Unauthorized
from shared.generic import aggregates_for
from shared.resource import UniqueKey
from shared.uris import resource_path

SESSION_LIFETIME = timedelta(days=7)
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))  # verify against it when the user is unknown: same timing


class Identity(ResourceApplication):
    name = "identity"
    aggregates = aggregates_for("identity", {"bureau": Bureau, "users": User, "sessions": Session})

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
        bureau = Bureau.create(bureau_id, {"name": bureau_name, "description": None, "group": None,
                                           "reply_to": email, "order_banner": {}, "notifications": {},
                                           "user": user_path}, bureau_path, None)
        user = User.create(user_id, {"username": email, "email": email, "emails": [email], "name": "Administrator",
                                     "bureau": bureau_path, "archived": False, "platform_admin": True,
                                     "password_hash": hash_password(password or generated)}, bureau_path, None)
        try:
            self.save(bureau, user, UniqueKey.claim("login", login_key(email), {"user_id": str(user_id)}))
        except IntegrityError:
            return None
        return generated

    def login(self, username, password):
        user = self._user_for_login(username)
        if user is None or not user.check_password(password):
            raise Unauthorized("Invalid username or password.")
        secret = new_secret()
        user_path = resource_path("users", user.id)
        expires = (datetime.now(timezone.utc) + SESSION_LIFETIME).isoformat()
        session = Session.create(uuid4(), {"user": user_path, "secret_hash": hash_secret(secret), "expires": expires},
                                 user.bureau, user_path)
        recordings = self.save(session)
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
