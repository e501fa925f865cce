import logging

from services.identity.application import Identity
from shared.errors import Unauthorized
from shared.eventstore import EventStore
from shared.service import ResourceService, rpc
from shared.settings import secret_key

log = logging.getLogger(__name__)


class IdentityStore(EventStore):
    """The identity event store, which on first start creates the first bureau and its manager."""

    def setup(self):
        super().setup()
        self.app.secret_key = secret_key(self.container.config)

    def start(self):
        config = self.container.config
        email = config["STRATUM_ADMIN_EMAIL"]
        generated = self.app.bootstrap(email, config.get("STRATUM_ADMIN_PASSWORD"), config["STRATUM_BUREAU_NAME"])
        if generated:
            # Printed once, on the run that created the account; it is stored only as a hash.
            print(f"\n*** Stratum administrator created: username {email}  password {generated}\n"
                  "*** (set STRATUM_ADMIN_PASSWORD to choose it; this is the only time it is shown)\n", flush=True)


class IdentityService(ResourceService):
    name = "identity"
    app = IdentityStore(Identity)

    @rpc
    def login(self, username, password):
        try:
            return self._announce(self.app.login(username, password))
        except Unauthorized:
            # a refused login may still have recorded a failure or a lock-out: let followers know
            self._announce({"application": self.app.name, "position": self.app.recorder.max_notification_id()})
            raise

    @rpc
    def request_password_reset(self, login):
        """Answers None whether or not the account exists (the gateway says the same to every caller)."""
        result = self.app.request_password_reset(login)
        if result:
            self._announce(result)
        return None

    @rpc
    def reset_password(self, token, password):
        return self._announce(self.app.reset_password(token, password))

    @rpc
    def password_reset_token(self, user_id):
        """Internal (the notifications service's mail); never exposed by the gateway."""
        return self.app.password_reset_token(user_id)
