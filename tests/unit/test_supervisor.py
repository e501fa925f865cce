"""runtime.launch's supervisor, with real child processes: a process that exits is restarted after a backoff that
doubles up to its cap (and starts over after a stable run), each restart is logged, the others keep running, and
Ctrl-C / SIGTERM stop everything."""
import io
import os
import signal
import subprocess
import sys
import textwrap
import time

from runtime.launch import Supervisor

PYTHON = sys.executable
EXITS_AT_ONCE = [PYTHON, "-c", "import sys; sys.exit(3)"]
RUNS_ON = [PYTHON, "-c", "import time; time.sleep(60)"]


def run_for(supervisor, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        supervisor.poll()
        time.sleep(0.01)


def test_a_process_that_keeps_dying_is_restarted_with_doubling_backoff_and_the_others_keep_running():
    log = io.StringIO()
    supervisor = Supervisor({"flaky": EXITS_AT_ONCE, "steady": RUNS_ON}, first=0.1, cap=0.4, stable_after=30,
                            out=log)
    supervisor.start()
    steady = supervisor.processes["steady"]
    try:
        run_for(supervisor, 2.0)
        delays = [delay for name, code, delay in supervisor.history if name == "flaky"]
        assert delays[:5] == [0.1, 0.2, 0.4, 0.4, 0.4]  # doubling, capped
        assert {code for name, code, _ in supervisor.history} == {3}
        assert supervisor.restarts["flaky"] >= 4 and supervisor.restarts["steady"] == 0
        assert supervisor.processes["steady"] is steady and steady.poll() is None  # never touched
        text = log.getvalue()
        assert "flaky exited with code 3 after" in text and "restarting it in 0.4 s" in text
        assert "flaky restarted (restart #1, pid" in text
    finally:
        supervisor.stop(timeout=5)
    assert steady.poll() is not None
    restarts = dict(supervisor.restarts)
    run_for(supervisor, 0.3)
    assert supervisor.restarts == restarts  # nothing comes back once stopping


def test_the_backoff_starts_over_after_a_stable_run():
    supervisor = Supervisor({"slow-crash": [PYTHON, "-c", "import time; time.sleep(0.3)"]}, first=0.05, cap=1,
                            stable_after=0.2, out=io.StringIO())
    supervisor.start()
    try:
        run_for(supervisor, 1.5)
    finally:
        supervisor.stop(timeout=5)
    delays = [delay for _, _, delay in supervisor.history]
    assert len(delays) >= 2 and set(delays) == {0.05}


LAUNCHER = textwrap.dedent("""
    import sys
    from runtime.launch import Supervisor, supervise
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    supervisor = Supervisor({"gateway": sleeper, "orders": sleeper, "crashy": [sys.executable, "-c", "pass"]},
                            first=0.1, cap=0.2)
    def tick():
        if not getattr(tick, "said", False):
            print(" ".join(str(p.pid) for n, p in supervisor.processes.items() if n != "crashy"), flush=True)
            tick.said = True
    supervise(supervisor, tick=tick, interval=0.05)
    print("stopped", flush=True)
""")


def _as_a_terminal_starts_it():
    # A shell's background job ignores SIGINT, and a child inherits that (Python then installs no Ctrl-C handler):
    # the launcher gets the default disposition a terminal gives it, however the suite itself was started.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_launcher():
    return subprocess.Popen([PYTHON, "-c", LAUNCHER], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=os.getcwd()), start_new_session=True,
                            preexec_fn=_as_a_terminal_starts_it)


def gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_sigterm_stops_every_process_and_the_launcher_exits_cleanly():
    launcher = start_launcher()
    pids = [int(pid) for pid in launcher.stdout.readline().split()]
    time.sleep(0.5)  # crashy has been restarted a few times meanwhile
    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(timeout=30) == 0
    assert launcher.stdout.read().strip() == "stopped"
    assert all(gone(pid) for pid in pids)


def test_ctrl_c_stops_every_process_and_the_launcher_exits_cleanly():
    launcher = start_launcher()
    pids = [int(pid) for pid in launcher.stdout.readline().split()]
    os.killpg(launcher.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole foreground process group
    assert launcher.wait(timeout=30) == 0
    assert all(gone(pid) for pid in pids)



def test_the_launcher_says_up_only_once_every_service_listens():
    """Ready (identity and the read side) is not enough for "up at": a client's first upload met a files service
    still starting. The launcher waits until readiness lists every service listening."""
    from runtime.launch import ready_body_verdict

    def body(**listening):
        return {"status": "ready", "checks": {"services": {"ok": all(listening.values()), "listening": listening}}}

    assert ready_body_verdict(body(orders=True, files=False)) == (False, "services to listen: files")
    assert ready_body_verdict({"status": "ready", "checks": {}}) == (False, "services to listen: unknown")
    assert ready_body_verdict(body(orders=True, files=True)) == (True, "")
