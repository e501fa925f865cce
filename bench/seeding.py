"""Seed a bureau's history quickly, through the services' own code.

Orders are made by the orders application's own `create` and `update` (validation, hooks, aggregates, events),
in-process, several processes side by side. Only the last step differs from a served command: instead of one
transaction per command, each process saves the aggregates of a batch of commands in one `save` (no idempotency
receipts: nothing will replay these commands). The read side is then built by the gateway's projector code
(`gateway.follower.Follower` over each application's own feed), never by writing read-side rows by hand.
"""
import multiprocessing
import os
import time

from runtime.config import build_config
from runtime.topology import APPLICATIONS, load
from shared.settings import event_store_env

BATCH = 500
CANCELLED_EVERY = 4  # one order in four is cancelled after it was made: two statuses to filter on


def seeding_config(environ):
    return build_config(environ=environ)


def order_payload(number):
    return {"name": f"scale-{number:08d}", "customer_email": f"customer{number % 997}@example.com",
            "priority": number % 100, "notes": f"seeded order {number}"}


def _collecting(app):
    """The application, made to hand back what a command would save instead of saving it (see the docstring)."""
    collected = []

    def execute(ctx, command):
        aggregates, result = command()
        collected.extend(aggregates)
        return dict(result, application=app.name)

    app._execute = execute
    return collected


def _seed_range(environ, bureau, user, first, last, progress):
    os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")  # as the services do
    config = seeding_config(environ)
    orders_cls = load(APPLICATIONS["orders"])
    app = orders_cls(env=dict(event_store_env(config, "orders"), POSTGRES_POOL_SIZE="1",
                              POSTGRES_MAX_OVERFLOW="0"))
    collected = _collecting(app)
    ctx = {"user": user, "bureau": bureau}
    try:
        for start in range(first, last, BATCH):
            numbers = range(start, min(start + BATCH, last))
            made = [app.create("order", order_payload(n), dict(ctx))["uri"] for n in numbers]
            app.save(*collected)
            collected.clear()
            for number, path in zip(numbers, made):
                if number % CANCELLED_EVERY == 0:
                    app.update("order", path.strip("/").split("/")[-1], {"status": "cancelled"}, dict(ctx))
            if collected:
                app.save(*collected)
                collected.clear()
            progress.put(len(numbers))
    finally:
        app.close()


def seed_orders(environ, orders, bureau, user, processes=2, log=print):
    """Make `orders` orders in `bureau` as `user`, split over `processes` processes. Returns seconds taken."""
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    progress = context.Queue()
    bounds = [orders * i // processes for i in range(processes + 1)]
    workers = [context.Process(target=_seed_range, args=(environ, bureau, user, bounds[i], bounds[i + 1], progress))
               for i in range(processes)]
    for worker in workers:
        worker.start()
    done, reported = 0, 0
    while done < orders:
        if any(w.exitcode not in (None, 0) for w in workers):
            raise RuntimeError(f"a seeding process failed: {[w.exitcode for w in workers]}")
        try:
            done += progress.get(timeout=1)
        except Exception:  # queue.Empty: check the workers again
            continue
        if done - reported >= max(orders // 20, BATCH):
            elapsed = time.perf_counter() - started
            log(f"seeded {done}/{orders} orders ({done / elapsed:.0f}/s)")
            reported = done
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            raise RuntimeError(f"a seeding process failed with exit code {worker.exitcode}")
    return time.perf_counter() - started


def bootstrap_identity(environ):
    """The first bureau and its administrator, as the identity service makes them on an empty store."""
    config = seeding_config(environ)
    identity = load(APPLICATIONS["identity"])(env=event_store_env(config, "identity"))
    try:
        identity.bootstrap(config["STRATUM_ADMIN_EMAIL"], config["STRATUM_ADMIN_PASSWORD"],
                           config["STRATUM_BUREAU_NAME"])
    finally:
        identity.close()


def build_read_side(environ, store, log=print):
    """Apply every application's feed to `store` with the rebuild's code (runtime.rebuild: the projector's
    follower, as a bulk load); returns (events, seconds)."""
    from runtime.rebuild import replay

    return replay(seeding_config(environ), store, report=log)
