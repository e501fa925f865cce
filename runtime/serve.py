"""Run one Stratum process: `python -m runtime.serve orders` (names in runtime.topology; a gateway's further copies
are `gateway-2`, `gateway-3` …: runtime.topology.instances).

Like `nameko run`, but the config comes from runtime.config (environment with defaults), so every process and every
test builds its settings the same way. SIGTERM or SIGINT stops it within STOP_GRACE seconds (stop_within).
"""
import warnings

warnings.filterwarnings("ignore", message="(?s).*Eventlet is deprecated")  # known; see DESIGN.md stack facts

import eventlet  # noqa: E402

eventlet.monkey_patch()  # noqa: E402  (before anything else touches sockets or threads)

import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

# psycopg decodes in C, but must wait with select.select (green after monkey_patch): its C wait blocks the hub
os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")

from nameko.runners import ServiceRunner  # noqa: E402

from runtime.budget import describe_process, process_connections  # noqa: E402
from runtime.config import build_config  # noqa: E402
from runtime.topology import PROCESSES, load, process_of  # noqa: E402

STOP_GRACE = 8  # seconds a stop waits for running workers: inside docker compose's 10 s and Kubernetes' 30 s
log = logging.getLogger("runtime.serve")


def main(argv):
    if len(argv) != 1 or process_of(argv[0]) not in PROCESSES:
        sys.exit(f"usage: python -m runtime.serve {{{'|'.join(PROCESSES)}}}  (a gateway's copies: gateway-2 …)")
    logging.basicConfig(level=os.environ.get("STRATUM_LOG_LEVEL", "INFO"),
                        format=f"%(asctime)s {argv[0]:>9} %(levelname)s %(name)s: %(message)s")
    config = build_config({"STRATUM_INSTANCE": argv[0]})
    service_cls = load(PROCESSES[process_of(argv[0])])
    pools = process_connections(service_cls, config)
    if pools:
        log.info("PostgreSQL connections of this process: %s (kept–at most)", describe_process(pools))
    runner = ServiceRunner(config)
    runner.add_service(service_cls)

    def shutdown(signum, frame):
        eventlet.spawn_n(stop_within, runner, STOP_GRACE)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    runner.start()
    runner.wait()


def stop_within(runner, grace):
    """Stop the service (its entrypoints, then its running workers), killing the workers still running `grace`
    seconds later. A worker waiting on an RPC to a service that stops at the same moment (a follower's pull, a
    timer's call) otherwise held the stop for the whole RPC timeout (30 s, measured), and the orchestrator's SIGKILL
    came first. Killing a worker loses nothing, as a SIGKILL of the process does (the fault suite's): a message is
    acknowledged only after its work, so it is delivered again; a transaction not committed is rolled back; commands
    are idempotent."""
    stopping = eventlet.spawn(runner.stop)
    with eventlet.Timeout(grace, False):
        stopping.wait()
        return
    log.warning("workers still running %s s after the stop began (e.g. waiting on a service that stopped too): "
                "killed; their messages are delivered again", grace)
    runner.kill()


if __name__ == "__main__":
    main(sys.argv[1:])
