"""Identity aggregates. Secrets are stored only as hashes and never leave this service (private_fields),
except a session's secret hash, which the gateway needs to authenticate requests from its read side."""
from uuid import NAMESPACE_URL, uuid5

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from shared.resource import Resource

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


class User(Resource):
    resource = "users"
    private_fields = ("password_hash",)

    @staticmethod
    def id_for_bootstrap(email):
        return uuid5(NAMESPACE_URL, f"stratum:bootstrap-user:{email.strip().lower()}")

    @classmethod
    def create(cls, id, fields, bureau, actor):
        fields = dict(fields, uuid=str(id))
        return super().create(id, fields, bureau, actor)

    def check_password(self, password):
        return not self.deleted and not self.fields.get("archived") and password_matches(
            self.fields.get("password_hash") or "", password
        )


class Session(Resource):
    resource = "sessions"


def login_key(login_name):
    """Usernames and e-mails are unique and found case-insensitively (see UniqueKey "login")."""
    return login_name.strip().lower()
