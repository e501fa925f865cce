"""A nameko service built from Stratum's own entrypoints (shared.amqp) whose handlers end the process outright when
given the word "poison", as a native crash or the kernel's OOM killer would: no exception, no acknowledgement; its event handler raises on "unreadable".
tests/integration/test_dead_letter.py runs it in a child process and restarts it like `make run`'s supervisor.

    python -m tests.kit.poisoned AMQP_URI DELIVERY_LIMIT
"""
import os
import sys

import eventlet

eventlet.monkey_patch()

from nameko.containers import ServiceContainer  # noqa: E402  (after monkey-patching, as nameko requires)

from shared.amqp import event_handler, rpc  # noqa: E402

SOURCE = "poison_source"  # the service name the test dispatches its events as
CRASH_EXIT_CODE = 86


class PoisonedService:
    name = "poisoned"
    handled = []

    @rpc
    def echo(self, word):
        if word == "poison":
            os._exit(CRASH_EXIT_CODE)
        return word

    @event_handler(SOURCE, "word")
    def on_word(self, word):
        if word == "poison":
            os._exit(CRASH_EXIT_CODE)
        if word == "unreadable":
            raise ValueError(f"cannot read {word!r}")
        PoisonedService.handled.append(word)

    @rpc
    def words_heard(self):
        return list(PoisonedService.handled)


def main():
    amqp_uri, limit = sys.argv[1], sys.argv[2]
    container = ServiceContainer(PoisonedService, {"AMQP_URI": amqp_uri, "STRATUM_DELIVERY_LIMIT": limit})
    container.start()
    print("ready", flush=True)
    container.wait()


if __name__ == "__main__":
    main()
