"""Run one Stratum process: `python -m runtime.serve orders` (names in runtime.topology).

Like `nameko run`, but the config comes from runtime.config (environment with defaults), so every process and every
test builds its settings the same way.
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
from runtime.topology import PROCESSES, load  # noqa: E402


def main(argv):
    if len(argv) != 1 or argv[0] not in PROCESSES:
        sys.exit(f"usage: python -m runtime.serve {{{'|'.join(PROCESSES)}}}")
    logging.basicConfig(level=os.environ.get("STRATUM_LOG_LEVEL", "INFO"),
                        format=f"%(asctime)s {argv[0]:>9} %(levelname)s %(name)s: %(message)s")
    config = build_config()
    service_cls = load(PROCESSES[argv[0]])
    pools = process_connections(service_cls, config)
    if pools:
        logging.getLogger("runtime.serve").info("PostgreSQL connections of this process: %s (kept–at most)",
                                                describe_process(pools))
    runner = ServiceRunner(config)
    runner.add_service(service_cls)

    def shutdown(signum, frame):
        eventlet.spawn_n(runner.stop)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    runner.start()
    runner.wait()


if __name__ == "__main__":
    main(sys.argv[1:])
