"""The rebuild process's own CPU per event: feed decoding and projection, the database server's work left out.

    python -m bench.project_cpu [--orders 2000] [--repeat 3] [--sqlite] [--profile FILE]

Seeds `--orders` orders (bench.rebuild.seed_orders) into a throwaway PostgreSQL database (event store and read
side, bench.write_path.throwaway_database), then, each `--repeat` times: (1) decodes the whole orders feed
(Orders.feed, what the rebuild reads) and (2) rebuilds the read side from it with the projector's code (Follower →
ReadStore.apply_feed, as a bulk load like runtime.rebuild). Prints this process's CPU (time.process_time) per event
of each step, best of the repeats: what runtime.rebuild spends, without the server's share. With --sqlite the read
side is a SQLite file instead, whose writes run in this process (so (2) then includes them). A report, never a test.
"""
import argparse
import os
import tempfile
import time

import psycopg

from bench.rebuild import seed_orders
from bench.write_path import PG_ADMIN_DSN, throwaway_database
from gateway.follower import Follower
from gateway.readstore import ReadStore, read_store_url
from runtime.config import build_config
from runtime.migrate import migrate
from runtime.rebuild import BATCH_SIZE as BATCH
from services.orders.application import Orders
from shared.settings import event_store_env


def decode_all(app):
    events, start = [], 1
    while True:
        feed = app.feed(start, BATCH)
        if feed["last"] is None:
            return events
        events.extend(feed["events"])
        if feed["complete"]:
            return events
        start = feed["last"] + 1


def project_all(store, app):
    store.reset()
    store.begin_bulk_load()
    Follower(store, batch_size=BATCH).catch_up("orders", lambda start, limit: app.feed(start, limit))
    store.end_bulk_load()


def cpu(function, *args):
    began = time.process_time()
    result = function(*args)
    return time.process_time() - began, result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.project_cpu", description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sqlite", action="store_true", help="a SQLite read side (its writes counted too)")
    parser.add_argument("--profile", metavar="FILE", help="cProfile of one decode+project to FILE")
    args = parser.parse_args(argv)
    with throwaway_database(PG_ADMIN_DSN) as dsn, tempfile.TemporaryDirectory(prefix="stratum-project-cpu-") as workdir:
        config = build_config({"STRATUM_POSTGRES_DSN": dsn, "STRATUM_DATA_DIR": workdir})
        migrate(config)
        database = dsn.rsplit("/", 1)[1]
        with psycopg.connect(dsn, autocommit=True) as conn:  # seeding, one commit a command: no WAL flush each
            conn.execute(f'ALTER DATABASE "{database}" SET synchronous_commit = off')
        app = Orders(env=event_store_env(config, "orders"))
        store = ReadStore("sqlite:///" + os.path.join(workdir, "readside.sqlite") if args.sqlite
                          else read_store_url(config))
        try:
            if args.sqlite:
                store.create_tables()
            seed_orders(app, args.orders, progress_every=0)
            decode, project, events = [], [], 0
            for _ in range(args.repeat):
                seconds, decoded = cpu(decode_all, app)
                decode.append(seconds)
                events = len(decoded)
                project.append(cpu(project_all, store, app)[0] - seconds)  # the feed is decoded again inside
            if args.profile:
                import cProfile
                cProfile.runctx("project_all(store, app)", globals(), locals(), args.profile)
        finally:
            store.dispose()
            app.close()
    print(f"{events} events ({args.orders} orders), best of {args.repeat}")
    print(f"decode  : {min(decode) / events * 1e6:7.1f} us CPU an event  (runs: "
          + ", ".join(f"{s:.2f}" for s in decode) + " s)")
    print(f"project : {min(project) / events * 1e6:7.1f} us CPU an event  (apply minus decode; runs: "
          + ", ".join(f"{s:.2f}" for s in project) + " s)")
    print(f"together: {(min(decode) + min(project)) / events * 1e6:7.1f} us CPU an event")


if __name__ == "__main__":
    main()
