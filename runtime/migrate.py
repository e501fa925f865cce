"""Migrate step: create every service's event-store tables and the read side's tables before anything serves.

Run once per deployment (and again safely: everything is CREATE IF NOT EXISTS). Doing it here, not at first boot,
avoids PostgreSQL's DDL race when several processes start together. A read database of an earlier release is
brought up to date here too (gateway.readstore.ReadStore.create_tables: 0.1.x's per-field audit table becomes the
audit log, with the same /event/ uuids).
    python -m runtime.migrate
"""
import logging
import warnings

warnings.filterwarnings("ignore", message="(?s).*Eventlet is deprecated")  # imported via nameko; known, see DESIGN

from gateway.readstore import read_store
from runtime.config import build_config
from runtime.topology import APPLICATIONS, load
from shared.eventstore import create_tables
from shared.settings import event_store_env

log = logging.getLogger(__name__)


def migrate(config):
    for dotted in APPLICATIONS.values():
        create_tables(config, load(dotted))
    store = read_store(config)
    try:
        store.create_tables()
    finally:
        store.dispose()
    start_notification_feeds(config)
    index_material_lots(config)


def index_material_lots(config):
    """Lots saved before the materials service indexed them by location are indexed (a stock's lots, issue 14), and
    the genealogy projection is brought up to the end of the log (the whole log once, on the first migrate step
    after the upgrade that introduced it; what is new since the last one afterwards)."""
    from services.materials.genealogy_projection import fill
    from services.materials.lot_index import index_lots
    env = dict(event_store_env(config, "materials"), POSTGRES_POOL_SIZE="1", POSTGRES_MAX_OVERFLOW="0")
    materials = load(APPLICATIONS["materials"])(env=env)
    try:
        index_lots(materials)
        fill(materials)
    finally:
        materials.close()


def start_notification_feeds(config):
    """The notifications subscriber reads each feed it follows from where it stood when it was first deployed: from
    the start on a new deployment, from the end on one that already has history (its triggers announce news; a
    first deployment must not mail years of past orders). Set once; later runs leave the positions alone."""
    from services.notifications.subscriber import SOURCES

    def app(name):
        env = dict(event_store_env(config, name), POSTGRES_POOL_SIZE="1", POSTGRES_MAX_OVERFLOW="0")
        return load(APPLICATIONS[name])(env=env)

    notifications = app("notifications")
    try:
        for source in SOURCES:
            feed = app(source)
            try:
                end = feed.recorder.max_notification_id() or 0
            finally:
                feed.close()
            notifications.begin_at(source, end)
    finally:
        notifications.close()


if __name__ == "__main__":
    migrate(build_config())
    print("stratum: storage is ready")
