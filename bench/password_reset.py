"""Does a password reset request for an existing account cost what one for an unknown address costs? (issue 15:
the two paths must take the same time, so the time tells nobody which accounts exist.) The identity application on a
SQLite file store (no broker, no gateway: both paths cross those alike), users with a history of logins, requests
for known and unknown addresses interleaved, each address's requests spaced as the rules allow (the `now` the
application takes). Only the request is timed: the account's side (apply_password_reset) runs in the background,
after the answer. Reports the median and p90 of each path and their ratio, known / unknown (1.0 is the goal).
Reports, not tests: nothing here asserts a timing.

    PYTHONPATH=. .venv/bin/python -m bench.password_reset [--users 40] [--logins 20] [--rounds 3]
"""
import argparse
import os
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone

from services.identity.application import Identity
from services.identity.domain import PasswordResetRequests, User
from shared.errors import Unauthorized
from tests.kit.apps import BUREAU, command_ctx


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--logins", type=int, default=20, help="logins (half of them failed) in each user's history")
    parser.add_argument("--rounds", type=int, default=PasswordResetRequests.PER_HOUR)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        app = Identity(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                            "SQLITE_DBNAME": os.path.join(directory, "identity.sqlite")})
        app.secret_key = b"bench"
        names = [f"user-{i}@bench.test" for i in range(args.users)]
        for name in names:
            app.create("users", {"username": name, "email": name, "password": "pw", "bureau": BUREAU},
                       command_ctx())
            for attempt in range(args.logins):
                try:
                    app.login(name, "pw" if attempt % 2 else "wrong")
                except Unauthorized:
                    pass
        known, unknown = [], []
        start = datetime.now(timezone.utc)
        for round_ in range(args.rounds):  # within the limit, each round after the user's RESET_INTERVAL
            now = start + round_ * (User.RESET_INTERVAL + timedelta(seconds=1))
            for i, name in enumerate(names):
                for login, times in ((name, known), (f"nobody-{round_}-{i}@bench.test", unknown)):
                    began = time.perf_counter()
                    result = app.request_password_reset(login, now=now)
                    times.append(time.perf_counter() - began)
                    assert result is not None
                    applied = app.apply_password_reset(result["requests"])  # the background side, untimed
                    assert bool(applied and applied["mailed"]) == (login == name)
        app.close()
    for label, times in (("known", known), ("unknown", unknown)):
        print(f"{label:8} n={len(times):4}  median {statistics.median(times) * 1000:7.3f} ms  "
              f"p90 {statistics.quantiles(times, n=10)[-1] * 1000:7.3f} ms")
    print(f"ratio known / unknown: median {statistics.median(known) / statistics.median(unknown):.2f}, "
          f"p90 {statistics.quantiles(known, n=10)[-1] / statistics.quantiles(unknown, n=10)[-1]:.2f}")


if __name__ == "__main__":
    main()
