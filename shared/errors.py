"""Errors that cross service boundaries and become the JSON error body of the HTTP API.

Every error carries (code, title, field). The classes are registered with nameko so an error raised in a
service arrives in the gateway as the same class (not a generic RemoteError) and maps to its HTTP status.
Body format: {"errors": [{"code": "...", "title": "...", "field": "..."}]}.
"""
from nameko.exceptions import deserialize_to_instance


class StratumError(Exception):
    status = 500
    code = "internal-error"

    def __init__(self, title, field=None, code=None):
        # nameko sends exc.args across RPC as strings: "" (not None) keeps "no field" intact on the way back.
        super().__init__(title, field or "", code or self.code)
        self.title = title
        self.field = field or None
        self.code = code or self.code

    def headers(self):
        return {}

    def as_json(self):
        error = {"code": self.code, "title": self.title}
        if self.field:
            error["field"] = self.field
        return {"errors": [error]}


@deserialize_to_instance
class InvalidPayload(StratumError):
    status = 400
    code = "invalid-payload"


@deserialize_to_instance
class Unauthorized(StratumError):
    status = 401
    code = "unauthorized"


@deserialize_to_instance
class Forbidden(StratumError):
    status = 403
    code = "forbidden"


@deserialize_to_instance
class NotFound(StratumError):
    status = 404
    code = "not-found"


@deserialize_to_instance
class MethodNotAllowed(StratumError):
    status = 405
    code = "method-not-allowed"

    def __init__(self, title, field=None, code=None, allow=()):
        super().__init__(title, field, code)
        self.allow = tuple(allow)
        self.args = (*self.args, list(self.allow))

    def headers(self):
        return {"Allow": ", ".join(self.allow)} if self.allow else {}


@deserialize_to_instance
class Conflict(StratumError):
    status = 409
    code = "conflict"


@deserialize_to_instance
class IdempotencyKeyReused(StratumError):
    status = 422
    code = "idempotency-key-reused"


@deserialize_to_instance
class TooManyRequests(StratumError):
    status = 429
    code = "too-many-requests"

    def __init__(self, title, field=None, code=None, retry_after=60):
        super().__init__(title, field, code)
        self.args = (*self.args, int(retry_after))  # travels across RPC with the rest
        self.retry_after = int(retry_after)

    def headers(self):
        return {"Retry-After": str(self.retry_after)}


@deserialize_to_instance
class ServiceUnavailable(StratumError):
    """Stratum cannot answer now (a service, the broker or a database is down or restarting): try again."""
    status = 503
    code = "service-unavailable"

    def __init__(self, title, field=None, code=None, retry_after=5):
        super().__init__(title, field, code)
        self.args = (*self.args, int(retry_after))
        self.retry_after = int(retry_after)

    def headers(self):
        return {"Retry-After": str(self.retry_after)}


@deserialize_to_instance
class NotImplementedYet(StratumError):
    """A documented endpoint whose rules are not built yet: said plainly instead of pretending."""
    status = 501
    code = "not-implemented"


@deserialize_to_instance
class PayloadTooLarge(StratumError):
    status = 413
    code = "payload-too-large"


@deserialize_to_instance
class StoredContentDamaged(StratumError):
    """A stored blob no longer matches the hash recorded at upload: refused rather than served."""
    status = 500
    code = "stored-content-damaged"


@deserialize_to_instance
class DeadLettered(StratumError):
    """The request stopped the service that handled it again and again, and was set aside (shared.dead_letter)."""
    status = 500
    code = "request-set-aside"
