"""Several gateway processes on one port (STRATUM_GATEWAY_PROCESSES): how many a deployment runs, what each copy is
called and runs, that each is counted in the connection budget and stopped with the callers, and that each takes
only its share of the per-address login limit."""
import io
import sys
import textwrap
import time

import pytest

from gateway.ratelimit import MAX_FAILURES, share
from runtime.budget import connection_budget, total
from runtime.config import build_config
from runtime.launch import Supervisor, reuse_port_works
from runtime.topology import PROCESSES, instances, process_of
from shared.settings import gateway_processes

DSN = "postgresql://stratum@db:5432/stratum"


def test_one_gateway_unless_the_setting_asks_for_more():
    assert gateway_processes(build_config({"STRATUM_POSTGRES_DSN": DSN}, environ={})) == 1
    assert gateway_processes(build_config({}, environ={})) == 1
    assert gateway_processes({}) == 1
    assert gateway_processes(build_config({}, environ={"STRATUM_GATEWAY_PROCESSES": "3"})) == 3
    assert gateway_processes(build_config({"STRATUM_POSTGRES_DSN": DSN, "STRATUM_GATEWAY_PROCESSES": " 1 "},
                                          environ={})) == 1


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "65"])
def test_a_wrong_count_is_refused_with_the_setting_named(value):
    with pytest.raises(ValueError, match="STRATUM_GATEWAY_PROCESSES"):
        gateway_processes({"STRATUM_GATEWAY_PROCESSES": value})


def test_each_gateway_copy_is_an_instance_of_its_own_running_the_gateway():
    named = instances({"STRATUM_GATEWAY_PROCESSES": "3"})
    assert list(named) == [*PROCESSES, "gateway-2", "gateway-3"]
    assert {name: process for name, process in named.items() if process == "gateway"} == {
        "gateway": "gateway", "gateway-2": "gateway", "gateway-3": "gateway"}
    assert instances({"STRATUM_GATEWAY_PROCESSES": "1"}) == {name: name for name in PROCESSES}
    assert [process_of(name) for name in ("gateway-2", "gateway", "orders", "orders-2", "gateway-x")] == [
        "gateway", "gateway", "orders", "orders-2", "gateway-x"]  # only the gateway has copies


def test_every_gateway_process_has_its_own_read_pool_in_the_budget():
    one = connection_budget(build_config({"STRATUM_POSTGRES_DSN": DSN, "STRATUM_GATEWAY_PROCESSES": "1"}, environ={}))
    two = connection_budget(build_config({"STRATUM_POSTGRES_DSN": DSN, "STRATUM_GATEWAY_PROCESSES": "2"}, environ={}))
    assert two["gateway-2"] == two["gateway"] == {"read side": (3, 8)}
    assert total(two) == (total(one)[0] + 3, total(one)[1] + 8)


def test_the_login_limit_is_shared_out_so_all_processes_together_allow_about_the_limit():
    assert share(MAX_FAILURES, 1) == MAX_FAILURES
    assert share(20, 2) == 10 and share(20, 3) == 7 and share(20, 64) == 1
    for processes in range(1, 30):
        assert MAX_FAILURES <= processes * share(MAX_FAILURES, processes) < MAX_FAILURES + processes


def test_this_machine_can_share_a_port_between_processes():
    assert reuse_port_works("127.0.0.1")


# Each child notes when SIGTERM reaches it and when it has done stopping; the callers take a moment to stop.
CHILD = textwrap.dedent("""
    import signal, sys, time
    name, path, linger = sys.argv[1], sys.argv[2], float(sys.argv[3])
    def note(what):
        with open(path, "a") as out:
            out.write(what + "\\n")
    def stop(signum, frame):
        note(name)
        time.sleep(linger)
        note(name + ":done")
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    time.sleep(60)
""")


def test_every_gateway_copy_stops_before_the_services_it_calls(tmp_path):
    order = tmp_path / "stopped"

    def child(name, linger):
        return [sys.executable, "-c", CHILD, name, str(order), str(linger)]

    supervisor = Supervisor({"orders": child("orders", 0), "gateway": child("gateway", 0.1),
                             "gateway-2": child("gateway-2", 0.3)}, out=io.StringIO())
    supervisor.start()
    try:
        time.sleep(1.0)  # every child has installed its handler
    finally:
        supervisor.stop(timeout=10)
    stopped = order.read_text().split()
    # both gateways are told at once, and the service they call only once both have stopped
    assert sorted(stopped[:2]) == ["gateway", "gateway-2"]
    assert stopped.index("orders") > max(stopped.index("gateway:done"), stopped.index("gateway-2:done")), stopped
