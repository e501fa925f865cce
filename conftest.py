# Patch first: nameko 2.14 no longer patches on import, and an unpatched process hangs in container tests.
import warnings

warnings.filterwarnings("ignore", message="(?s).*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import os  # noqa: E402

os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")  # psycopg's C wait would block the eventlet hub

pytest_plugins = ["tests.kit.plugin"]
