"""The PostgreSQL connection budget of a deployment (D11): how many connections each process may hold at most, from
the settings, so that the sum stays under the server's max_connections (100 by default).

Counted from what each process's service class holds: every EventStore (an eventsourcing application: psycopg_pool
with STRATUM_PG_POOL_SIZE connections open from the start, up to STRATUM_PG_MAX_OVERFLOW more while busy) and every
ReadSide (SQLAlchemy: STRATUM_READ_POOL_SIZE kept once used, up to STRATUM_READ_MAX_OVERFLOW more). Nothing else in
a serving process opens a PostgreSQL connection; the migrate step runs before them with one at a time.
With SQLite there is no budget (every figure is 0).
"""
import inspect

from nameko.extensions import DependencyProvider

from runtime.topology import PROCESSES, instances, load, process_of
from shared.settings import event_store_pool, postgres_params, read_side_pool


def _providers(service_cls):
    return [value for _, value in inspect.getmembers(service_cls) if isinstance(value, DependencyProvider)]


def process_connections(service_cls, config):
    """{pool: (kept, at most)} for one process running `service_cls`; empty on SQLite."""
    from gateway.readside import ReadSide
    from shared.eventstore import EventStore

    if postgres_params(config.get("STRATUM_POSTGRES_DSN")) is None:
        return {}
    pools = {}
    for provider in _providers(service_cls):
        if isinstance(provider, EventStore):
            size, overflow = event_store_pool(config)
            pools["event store"] = (size, size + overflow)
        elif isinstance(provider, ReadSide):
            size, overflow = read_side_pool(config)
            pools["read side"] = (size, size + overflow)
    return pools


def connection_budget(config, processes=PROCESSES):
    """{instance name: {pool: (kept, at most)}} for the processes of a deployment: one of each, and
    STRATUM_GATEWAY_PROCESSES gateways (runtime.topology.instances), each with its own pools."""
    return {name: process_connections(load(processes[process_of(name)]), config)
            for name in instances(config, processes)}


def total(budget):
    """(connections kept at rest, connections at most) over a budget."""
    return (sum(kept for pools in budget.values() for kept, _ in pools.values()),
            sum(most for pools in budget.values() for _, most in pools.values()))


def describe_process(pools):
    return " + ".join(f"{name} {kept}–{most}" for name, (kept, most) in pools.items()) or "none"


def describe_budget(budget):
    """One line: the total, then the processes grouped by what they hold."""
    kept, most = total(budget)
    groups = {}
    for name, pools in budget.items():
        if pools:
            groups.setdefault(describe_process(pools), []).append(name)
    parts = "; ".join(f"{', '.join(names)}: {pools}" for pools, names in groups.items())
    return (f"PostgreSQL connection budget: at most {most}, {kept} kept at rest ({parts}; kept–at most each); "
            "the server's max_connections must be larger (PostgreSQL's default is 100)")


def server_headroom(dsn, budget):
    """A warning when the server's max_connections (less its superuser reserve) cannot hold the budget, else None."""
    import psycopg

    pg = postgres_params(dsn)
    with psycopg.connect(dbname=pg["dbname"], host=pg["host"], port=pg["port"], user=pg["user"],
                         password=pg["password"] or None, connect_timeout=5) as conn:
        limit = int(conn.execute("SHOW max_connections").fetchone()[0])
        reserved = int(conn.execute("SHOW superuser_reserved_connections").fetchone()[0])
    _, most = total(budget)
    if most > limit - reserved:
        return (f"the budget ({most}) exceeds what PostgreSQL allows ({limit} max_connections − {reserved} "
                "reserved): lower STRATUM_PG_POOL_SIZE / STRATUM_PG_MAX_OVERFLOW / STRATUM_READ_* or raise "
                "max_connections")
    return None
