"""Nothing lost on a crash: background work whose message never left (the service died between its commit and its
publish) is found in the service's own log by its sweeper and done, on SQLite and PostgreSQL.

Each test commits the asking event directly through the service's application, on the same store, without the
publish that the service would have sent after it: exactly what a crash at that point leaves behind."""
import uuid

import pytest
import requests

from services.files.application import Files
from services.orders.application import Orders
from shared import uris
from shared.blobcipher import blob_key
from shared.blobstore import BlobStore
from shared.settings import blob_dir, event_store_env, secret_key
from tests.kit.meshes import box_stl
from tests.kit.plugin import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def config_overrides():
    return {"STRATUM_SWEEP_SECONDS": "2", "STRATUM_SWEEP_INTERVAL": "1"}


@pytest.fixture(scope="module")
def ctx(admin):
    session = admin.get("/sessions/").json()
    return {"user": uris.normalise(session["user"]), "bureau": uris.normalise(session["bureau"])}


def command(ctx):
    return dict(ctx, command_id=str(uuid.uuid4()))


def direct(system, application_cls):
    """The service's application on the service's own store, beside the running service."""
    return application_cls(env=event_store_env(system.config, application_cls.name))


def processed_model(admin, tmp_path, dims=(10, 10, 10)):
    created = admin.post("/model/", json={"name": "m.stl", "type": "stl"})
    with open(box_stl(tmp_path / "m.stl", dims=dims), "rb") as handle:
        assert requests.put(created.headers["X-Upload-Location"], data=handle, timeout=60).status_code == 204
    uri = created.headers["Location"]
    eventually(lambda: admin.get(uri).json()["status"] == "processed", timeout=60)
    return uri


def test_an_upload_whose_job_message_was_lost_is_still_analysed(admin, system, tmp_path):
    created = admin.post("/model/", json={"name": "lost.stl", "type": "stl"})
    uri = created.headers["Location"]
    path = box_stl(tmp_path / "lost.stl", dims=(2, 3, 4))
    blob = BlobStore(blob_dir(system.config), blob_key(secret_key(system.config))).put_file(path)
    files = direct(system, Files)
    try:  # the bytes landed and were recorded; the "upload_received" message never left
        files.advance("model", uris.parse_uri(uri)[1], "receive", {"blob": blob.as_dict()}, str(uuid.uuid4()))
    finally:
        files.close()
    body = eventually(lambda: admin.get(uri).json()["status"] == "processed" and admin.get(uri).json(), timeout=60)
    assert body["volume_mm"] == pytest.approx(24.0) and body["virus_scan"] == "passed"


def test_a_clone_whose_job_message_was_lost_is_still_copied(admin, system, ctx):
    source = admin.post("/order/", json={"name": "to clone"}).headers["Location"]
    product = admin.post("/product/", json={"order": source, "no_model_upload": True}).headers["Location"]
    admin.post("/line-item/", json={"product": product, "quantity": 3})
    orders = direct(system, Orders)
    try:  # the clone was committed as `cloning`; the copy request never left
        clone = orders.act("order", uris.parse_uri(source)[1], "clone", {}, command(ctx))["uri"]
    finally:
        orders.close()
    # copied: the clone leaves `cloning`, and its copied line item moves on by itself (a no-model item to pending)
    body = eventually(lambda: admin.get(clone).json().get("status") in ("new", "pending") and admin.get(clone).json(),
                      timeout=60)
    assert len(body["line_items"]) == 1


def test_a_line_item_whose_estimate_request_was_lost_is_still_estimated(admin, system, ctx, tmp_path):
    model = processed_model(admin, tmp_path)
    order = admin.post("/order/", json={"name": "estimate me"}).headers["Location"]
    product = admin.post("/product/", json={"order": order}).headers["Location"]
    orders = direct(system, Orders)
    try:  # the line item was committed; the estimate request never left
        item = orders.create("line-item", {"product": uris.normalise(product), "model": uris.normalise(model),
                                           "quantity": 3}, command(ctx))["uri"]
    finally:
        orders.close()
    estimates = eventually(lambda: admin.get(item).json().get("estimates"), timeout=60)
    assert estimates["materials"]["base"] == pytest.approx(3.0)
