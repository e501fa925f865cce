import logging

from services.identity.application import Identity
from services.identity.domain import PasswordResetRequests
from shared.amqp import event_handler
from shared.errors import Unauthorized
from shared.eventstore import EventStore
from shared.service import ResourceService, rpc
from shared.settings import secret_key
from shared.sweep import sweep_timer, sweeper_for

log = logging.getLogger(__name__)
PASSWORD_RESET_GRANTED = "password_reset_granted"


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
        """Answers None whether or not the account exists (the gateway says the same to every caller). A granted
        request, known or not, publishes the same message; the account's side is applied by its handler."""
        result = self.app.request_password_reset(login)
        if result:
            self.dispatch(PASSWORD_RESET_GRANTED, {"requests": result["requests"]})
        return None

    @event_handler("identity", PASSWORD_RESET_GRANTED)
    def apply_password_reset(self, payload):
        result = self.app.apply_password_reset(payload["requests"])
        if result and result["mailed"]:
            self._announce(result)  # the UserPasswordResetRequested the notifications service mails

    @sweep_timer(interval=30)
    def resume_password_resets(self):
        """A granted request whose message a crash lost is found in the log and applied (shared.sweep)."""
        sweeper = sweeper_for(self.app, "password-resets",
                              [(PasswordResetRequests, PasswordResetRequests.Granted)],
                              int(self.config["STRATUM_SWEEP_SECONDS"]))
        sweeper.sweep(lambda requests: requests.pending is not None,
                      lambda requests: self.dispatch(PASSWORD_RESET_GRANTED, {"requests": str(requests.id)}))

    @rpc
    def reset_password(self, token, password):
        return self._announce(self.app.reset_password(token, password))

    @rpc
    def password_reset_token(self, user_id):
        """Internal (the notifications service's mail); never exposed by the gateway."""
        return self.app.password_reset_token(user_id)
