"""Files through the HTTP gateway (files.md §0.2, §1.1, §1.2, §2.1, §2.4, §2.5), on SQLite and PostgreSQL: the
upload promise, mesh analysis checked against an independent computation, snapshots, signed expiring downloads,
documents and their replacement, and every kind of bad upload ending in a clear state."""
import hashlib
import io
import os
import time
import tracemalloc
import uuid

import pytest
import requests
from PIL import Image

from gateway import links
from services.files.scan import EICAR
from tests.kit.meshes import box_stl, icosphere_stl, reference_figures
from tests.kit.plugin import eventually
from tests.kit.tenants import make_tenant

pytestmark = pytest.mark.e2e

MAX_UPLOAD_MB = 40


@pytest.fixture(scope="module")
def config_overrides():
    # the callback receiver below listens on 127.0.0.1, an address callbacks may only reach when allowed
    return {"STRATUM_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB), "STRATUM_CALLBACKS_ALLOW_PRIVATE": "1"}


def new_model(api, **fields):
    fields.setdefault("name", f"part-{uuid.uuid4().hex[:6]}.stl")
    fields.setdefault("type", "stl")
    response = api.post("/model/", json=fields)
    assert response.status_code == 201, response.text
    assert response.headers["X-Upload-Location"].startswith(api.base_url + "/upload/model/")
    return response.headers["Location"], response.headers["X-Upload-Location"]


def put_file(upload_url, path, content_type="application/octet-stream"):
    with open(path, "rb") as handle:  # streamed by requests, never read whole here
        return requests.put(upload_url, data=handle, headers={"Content-Type": content_type}, timeout=60)


def settled(api, uri, field="status", pending=("not-uploaded", "processing")):
    def check():
        body = api.get(uri).json()
        return body if body.get(field) not in pending else None
    return eventually(check, timeout=60, interval=0.1)


def upload_model(api, path, **fields):
    uri, upload = new_model(api, **fields)
    assert put_file(upload, path).status_code == 204
    return settled(api, uri)


def test_post_promises_an_upload(admin):
    uri, upload = new_model(admin, file_unit="mm")
    body = admin.get(uri).json()
    assert body["status"] == "not-uploaded" and body["virus_scan"] == "unscanned"
    assert body["upload-location"].startswith(admin.base_url + "/upload/model/")
    assert body["content"] is None and body["volume_mm"] is None
    assert body["user_uri"] == admin.get("/sessions/").json()["user"]


@pytest.mark.parametrize("ascii_format", [False, True], ids=["binary", "ascii"])
def test_stl_in_mm_is_measured_exactly(admin, tmp_path, ascii_format):
    path = box_stl(tmp_path / "box.stl", dims=(10, 20, 30), ascii=ascii_format)
    body = upload_model(admin, path, file_unit="mm")
    assert body["status"] == "processed", body
    assert body["virus_scan"] == "passed"
    expected = reference_figures(path, 1.0)
    assert body["volume_mm"] == pytest.approx(6000.0, rel=1e-6) == pytest.approx(expected["volume"], rel=1e-6)
    assert body["surface_area_mm"] == pytest.approx(2200.0, rel=1e-6)
    assert [body["size"][k] for k in "xyz"] == pytest.approx([10, 20, 30], rel=1e-6)
    assert body["polygons"] == expected["facets"] == 12
    assert body["file_size"] == os.path.getsize(path)
    assert body["analyses"]["manifold"] is True and body["analyses"]["bodies"] == 1
    assert body["analyses"]["inverted_triangles"] == 0


def test_inches_convert_to_mm(admin, tmp_path):
    path = icosphere_stl(tmp_path / "sphere-in.stl", radius=1.0, unit_scale=1.0)  # a 1-inch-radius sphere
    body = upload_model(admin, path, file_unit="in")
    expected = reference_figures(path, 25.4)
    assert body["status"] == "processed", body
    assert body["volume_mm"] == pytest.approx(expected["volume"], rel=1e-6)
    assert body["surface_area_mm"] == pytest.approx(expected["area"], rel=1e-6)
    assert [body["size"][k] for k in "xyz"] == pytest.approx(expected["extents"], rel=1e-6)
    assert body["size"]["x"] == pytest.approx(50.8, rel=0.01)


def test_null_unit_reads_the_header(admin, tmp_path):
    path = box_stl(tmp_path / "box-in.stl", dims=(1, 2, 3), header=b"UNITS=in")
    body = upload_model(admin, path, file_unit=None)
    assert body["status"] == "processed", body
    assert body["volume_mm"] == pytest.approx(6 * 25.4 ** 3, rel=1e-6)
    assert body["analyses"]["unit"] == "in" and body["analyses"]["unit_source"] == "header"


def test_content_link_serves_the_same_bytes_and_expires(admin, system, tmp_path):
    path = box_stl(tmp_path / "dl.stl", dims=(5, 5, 5))
    body = upload_model(admin, path)
    content = requests.get(body["content"], timeout=30)  # a signed link needs no session
    assert content.status_code == 200
    assert hashlib.sha256(content.content).hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()
    # the same link with its expiry moved is no longer valid; a correctly signed but past link has expired
    forged = body["content"].replace("expires=", "expires=1")
    assert requests.get(forged, timeout=30).status_code == 403
    model_uuid = body["uri"].rstrip("/").rsplit("/", 1)[1]
    past = int(time.time()) - 1
    signature = links._signature(system.config, "content", "model", model_uuid, "content", past)
    expired = requests.get(f"{system.base_url}/content/{model_uuid}/?resource=model&field=content"
                           f"&expires={past}&signature={signature}", timeout=30)
    assert expired.status_code == 403 and "expired" in expired.json()["errors"][0]["title"]


def test_snapshot_is_a_png_of_the_model(admin, tmp_path):
    path = box_stl(tmp_path / "snap.stl", dims=(40, 20, 10))
    body = upload_model(admin, path)
    rendered = eventually(lambda: admin.get(body["uri"]).json()["snapshot_content"], timeout=60)
    image = Image.open(io.BytesIO(requests.get(rendered, timeout=30).content))
    assert image.format == "PNG" and image.size == (640, 480)
    rgb = image.convert("RGB")
    centre = rgb.getpixel((320, 240))
    assert centre[0] > centre[2] + 60, centre  # the model, in its orange, fills the centre
    assert rgb.getpixel((2, 2)) in ((255, 255, 255),), rgb.getpixel((2, 2))  # background at the corner
    view = admin.get(body["uri"] + "snapshot/").json()
    assert view["status"] == "rendered" and view["model_status"] == "processed"
    binary = admin.get(body["uri"] + "snapshot/binary/")
    assert binary.status_code == 200 and binary.headers["Content-Type"] == "image/png"
    # a re-render with other settings replaces it
    assert admin.post(body["uri"] + "snapshot/", json={"width": 200, "height": 100, "color": "#0000FF"}) \
        .status_code == 204
    eventually(lambda: admin.get(body["uri"] + "snapshot/").json()["status"] == "rendered"
               and admin.get(body["uri"] + "snapshot/").json()["width"] == 200, timeout=60)
    small = Image.open(io.BytesIO(admin.get(body["uri"] + "snapshot/binary/").content))
    assert small.size == (200, 100)
    assert admin.post(body["uri"] + "snapshot/", json={"color": "orange"}).status_code == 400


@pytest.mark.parametrize("content, status, words", [
    (b"", "inoperable", "empty"),
    (b"this is not a mesh at all, just words", "error", "not the declared format"),
    (b"\x00" * 80 + (100).to_bytes(4, "little") + b"\x01" * 300, "error", "not the declared format"),
    (EICAR, "error", "EICAR"),
], ids=["empty", "garbage", "truncated-binary", "eicar"])
def test_broken_files_end_in_a_clear_state(admin, tmp_path, content, status, words):
    path = tmp_path / "broken.stl"
    path.write_bytes(content)
    body = upload_model(admin, path)
    assert body["status"] == status, body
    assert words.lower() in body["analyses"]["error"].lower(), body["analyses"]
    # …and the service keeps serving others
    good = upload_model(admin, box_stl(tmp_path / "after.stl", dims=(1, 1, 1)))
    assert good["status"] == "processed"


def test_nan_vertex_is_an_error(admin, tmp_path):
    path = box_stl(tmp_path / "nan.stl", dims=(1, 1, 1))
    data = bytearray(path.read_bytes())
    data[84 + 12:84 + 16] = b"\x00\x00\xc0\x7f"  # first vertex x = NaN
    path.write_bytes(bytes(data))
    body = upload_model(admin, path)
    assert body["status"] == "error" and body["virus_scan"] == "passed", body


def test_too_large_is_refused_at_the_door(admin, tmp_path):
    path = tmp_path / "huge.stl"
    with open(path, "wb") as handle:
        handle.truncate((MAX_UPLOAD_MB + 1) * 1024 * 1024)
    uri, upload = new_model(admin)
    response = put_file(upload, path)
    assert response.status_code == 413, response.text
    body = admin.get(uri).json()
    assert body["status"] == "file-too-large" and "limit" in body["analyses"]["error"]
    assert body["upload-location"] is None


def test_upload_streams_instead_of_buffering(admin, tmp_path):
    """The gateway runs in this process: the peak of all Python allocations during a 32 MB upload (the client's
    included) stays a fraction of it, so the bytes were streamed, not buffered."""
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(32 * 1024 * 1024))
    created = admin.post("/file/", json={"bucket": "test", "key": "blob.bin", "mimetype": "application/octet-stream",
                                         "name": "blob.bin"})
    assert created.status_code == 201, created.text
    tracemalloc.start()
    try:
        assert put_file(created.headers["X-Upload-Location"], path).status_code == 204
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, peak
    body = admin.get(created.headers["Location"]).json()
    assert body["uploaded"] and body["content"]


def test_upload_links_are_single_use_and_signed(admin, tmp_path):
    path = box_stl(tmp_path / "once.stl", dims=(2, 2, 2))
    uri, upload = new_model(admin)
    assert requests.put(upload.replace("signature=", "signature=0"), data=b"x", timeout=30).status_code == 403
    assert put_file(upload, path).status_code == 204
    assert put_file(upload, path).status_code in (204, 409)  # the same bytes again are harmless
    other = box_stl(tmp_path / "other.stl", dims=(3, 3, 3))
    assert put_file(upload, other).status_code == 409


def test_other_bureaus_see_nothing(admin, tmp_path):
    tenant = make_tenant(admin, __import__("tests.kit.plugin", fromlist=["login"]).login, "files")
    body = upload_model(admin, box_stl(tmp_path / "mine.stl", dims=(1, 2, 3)))
    assert tenant.manager.get(body["uri"]).status_code == 404
    order = admin.post("/order/", json={"name": "mine"}).headers["Location"]
    attach = tenant.manager.post("/document/", json={"name": "x.pdf", "related_table_name": "order",
                                                     "related_uuid": [order.rstrip("/").rsplit("/", 1)[1]]})
    assert attach.status_code == 400 and attach.json()["errors"][0]["field"] == "related_uuid"  # not theirs
    assert tenant.manager.get(body["uri"] + "snapshot/").status_code == 404
    listed = tenant.manager.get("/model/").json()
    assert body["uri"] not in {m["uri"] for m in listed["resources"]}


def test_documents_attach_replace_and_scan(admin, tmp_path):
    from shared import catalogue
    from tests.kit.payloads import PayloadFactory

    session = admin.get("/sessions/").json()
    lot_uri = PayloadFactory(admin, session["bureau"], session["user"]).create(catalogue.resource("material-lot"))
    lot = lot_uri.rstrip("/").rsplit("/", 1)[1]
    unknown = admin.post("/document/", json={"name": "c.pdf", "related_table_name": "material_lot",
                                             "related_uuid": [str(uuid.uuid4())]})
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["field"] == "related_uuid"
    created = admin.post("/document/", json={"name": "certificate.pdf", "related_table_name": "material_lot",
                                             "related_uuid": [lot]})
    assert created.status_code == 201, created.text
    uri = created.headers["Location"]
    pdf = tmp_path / "certificate.pdf"
    pdf.write_bytes(b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n")
    assert put_file(created.headers["X-Upload-Location"], pdf, "application/pdf").status_code == 204
    doc = settled(admin, uri, field="virus_scan", pending=("unscanned",))
    assert doc["virus_scan"] == "passed" and doc["upload_location"] is None
    assert requests.get(doc["content"], timeout=30).content == pdf.read_bytes()
    found = admin.get(f"/document/?filter[related_table_name]=material_lot&filter[related_uuid]={lot}").json()
    assert [d["uri"] for d in found["resources"]] == [uri]

    replaced = admin.post(uri + "replace/", json={"name": "certificate-v2.pdf"})
    assert replaced.status_code == 201, replaced.text
    new_uri = replaced.headers["Location"]
    assert replaced.headers["X-Upload-Location"]
    new = admin.get(new_uri).json()
    assert new["previous_document"] == uri and new["previous_documents"] == [uri]
    assert new["related_uuid"] == [lot] and new["upload_location"]
    assert admin.get(uri).json()["archived"]
    assert admin.post(uri + "replace/", json={"name": "again.pdf"}).status_code == 400

    fake = tmp_path / "fake.pdf"
    fake.write_bytes(b"MZ\x90\x00 definitely not a pdf")
    assert put_file(replaced.headers["X-Upload-Location"], fake).status_code == 204
    assert settled(admin, new_uri, field="virus_scan", pending=("unscanned",))["virus_scan"] == "quarantined"


def test_bad_model_posts_change_nothing(admin):
    before = admin.get("/model/").json()["total_count"]
    assert admin.post("/model/", json={"type": "stl"}).status_code == 400  # no name
    assert admin.post("/model/", json={"name": "x", "type": "dwg"}).status_code == 400
    assert admin.post("/model/", json={"name": "x", "type": "stl", "file_unit": "yards"}).status_code == 400
    assert admin.get("/model/").json()["total_count"] == before


@pytest.mark.parametrize("fmt", ["obj", "ply", "3mf"])
def test_other_mesh_formats_are_measured(admin, tmp_path, fmt):
    import trimesh

    path = tmp_path / f"box.{fmt}"
    trimesh.creation.box(extents=(10, 20, 30)).export(path, file_type=fmt)
    body = upload_model(admin, path, type=fmt, file_unit="mm")
    assert body["status"] == "processed", body
    assert body["volume_mm"] == pytest.approx(6000.0, rel=1e-6)
    assert body["surface_area_mm"] == pytest.approx(2200.0, rel=1e-6)
    assert body["analyses"]["format"] == fmt


def test_archive_with_path_traversal_is_an_error(admin, tmp_path):
    import zipfile

    path = tmp_path / "evil.3mf"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("3D/3dmodel.model", "<model/>")
        archive.writestr("../evil.model", "<model/>")
    body = upload_model(admin, path, type="3mf")
    assert body["status"] == "error" and "unsafe member name" in body["analyses"]["error"], body


def test_declared_format_must_match_the_content(admin, tmp_path):
    path = box_stl(tmp_path / "really-stl.obj", dims=(1, 1, 1))
    body = upload_model(admin, path, type="obj")
    assert body["virus_scan"] == "quarantined" and body["status"] == "error"
    assert "not the declared format 'obj'" in body["analyses"]["error"]


def test_an_orders_models_are_bundled_into_an_expiring_zip(admin, tmp_path):
    import zipfile

    order = admin.post("/order/", json={"name": f"zip-{uuid.uuid4().hex[:6]}"}).headers["Location"]
    product = admin.post("/product/", json={"order": order}).headers["Location"]
    paths, items = [], []
    for name, dims in (("bracket.stl", (1, 2, 3)), ("../../etc/passwd", (2, 2, 2))):
        path = box_stl(tmp_path / f"{len(paths)}.stl", dims=dims)
        model = upload_model(admin, path, name=name)
        paths.append(path)
        item = admin.post("/line-item/", json={"product": product, "model": model["uri"], "quantity": 1})
        assert item.status_code == 201, item.text
        items.append(item.headers["Location"])
    requested = admin.post("/zipfile-request/", json={"related_table_name": "order",
                                                      "related_uuid": order.rstrip("/").rsplit("/", 1)[1],
                                                      "line_items": items})
    assert requested.status_code == 201, requested.text
    zip_uri = requested.headers["Location"]
    assert zip_uri.startswith(admin.base_url + "/zipfile/")
    body = settled(admin, zip_uri, pending=("pending", "processing"))
    assert body["status"] == "completed" and body["expiry"] > body["created"]
    assert [admin.base_url + p for p in body["manifest"]["line_items"]] == items
    assert len(body["manifest"]["models"]) == 2
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(requests.get(body["content"], timeout=30).content)
    with zipfile.ZipFile(bundle) as archive:
        names = sorted(archive.namelist())
        assert names == ["bracket.stl", "passwd.stl"]  # only file names: nothing can land outside a folder
        assert archive.read("bracket.stl") == paths[0].read_bytes()


def test_a_zip_of_something_missing_is_refused(admin):
    before = admin.get("/zipfile/").json()["total_count"]
    missing = admin.post("/zipfile-request/", json={"related_table_name": "order", "related_uuid": str(uuid.uuid4())})
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["title"] == "Some of the requested data cannot be found."
    order = admin.post("/order/", json={"name": "z"}).headers["Location"]
    foreign = admin.post("/zipfile-request/", json={"related_table_name": "order",
                                                    "related_uuid": order.rstrip("/").rsplit("/", 1)[1],
                                                    "line_items": [f"{admin.base_url}/line-item/{uuid.uuid4()}/"]})
    assert foreign.status_code == 400 and foreign.json()["errors"][0]["field"] == "line_items"  # no such line item
    other_order = admin.post("/order/", json={"name": "other"}).headers["Location"]
    product = admin.post("/product/", json={"order": other_order, "no_model_upload": True}).headers["Location"]
    elsewhere = admin.post("/line-item/", json={"product": product, "quantity": 1}).headers["Location"]
    not_in_order = admin.post("/zipfile-request/", json={"related_table_name": "order",
                                                         "related_uuid": order.rstrip("/").rsplit("/", 1)[1],
                                                         "line_items": [elsewhere]})
    assert not_in_order.status_code == 404
    assert admin.get("/zipfile/").json()["total_count"] == before


def test_stored_files_are_encrypted_and_a_damaged_one_is_refused(admin, system, tmp_path):
    from shared.blobcipher import MAGIC
    from shared.blobstore import BlobStore
    from shared.settings import blob_dir

    path = box_stl(tmp_path / "damaged.stl", dims=(4, 5, 6))
    body = upload_model(admin, path)
    stored = BlobStore(blob_dir(system.config)).path(hashlib.sha256(path.read_bytes()).hexdigest())
    original = open(stored, "rb").read()
    assert original.startswith(MAGIC) and path.read_bytes()[84:200] not in original  # encrypted at rest
    try:
        with open(stored, "r+b") as handle:  # flip one byte on disk, size unchanged
            handle.seek(100)
            handle.write(bytes([original[100] ^ 0xFF]))
        response = requests.get(admin.get(body["uri"]).json()["content"], timeout=30)
        assert response.status_code == 500
        assert response.json()["errors"][0]["code"] == "stored-content-damaged"
    finally:
        with open(stored, "wb") as handle:
            handle.write(original)


def test_form_encoded_posts_and_assets_follow_the_same_protocol(admin, tmp_path):
    created = admin.post("/model/", data={"name": "form.stl", "type": "stl", "file_unit": "cm"})
    assert created.status_code == 201, created.text
    with open(box_stl(tmp_path / "form.stl", dims=(1, 2, 3)), "rb") as handle:  # 1×2×3 cm
        assert requests.put(created.headers["X-Upload-Location"], data=handle, timeout=60).status_code == 204
    assert settled(admin, created.headers["Location"])["volume_mm"] == pytest.approx(6000.0)

    asset = admin.post("/asset/", json={"name": "fixture.stl", "type": "stl", "description": "jig",
                                        "model": created.headers["Location"]})
    assert asset.status_code == 201, asset.text
    with open(box_stl(tmp_path / "jig.stl", dims=(2, 2, 2)), "rb") as handle:
        assert requests.put(asset.headers["X-Upload-Location"], data=handle, timeout=60).status_code == 204
    body = settled(admin, asset.headers["Location"])
    assert body["status"] == "processed" and body["volume_mm"] == pytest.approx(8.0) and body["content"]


def test_the_callback_is_called_when_processing_ends(admin, tmp_path):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received = []

    class Receiver(BaseHTTPRequestHandler):
        def do_PUT(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook = {"url": f"http://127.0.0.1:{server.server_port}/hook", "method": "PUT"}
        assert admin.post("/model/", json={"name": "x.stl", "type": "stl", "callback": {"url": "ftp://x"}}) \
            .status_code == 400
        good = upload_model(admin, box_stl(tmp_path / "hooked.stl", dims=(3, 3, 3)), callback=hook)
        bad_path = tmp_path / "bad.stl"
        bad_path.write_bytes(b"garbage")
        bad = upload_model(admin, bad_path, callback=hook)
        eventually(lambda: len(received) == 2, timeout=30)
        by_uri = {r["uri"].rsplit("/model/", 1)[1]: r for r in received}
        assert by_uri[good["uri"].rsplit("/model/", 1)[1]]["status"] == "processed"
        assert by_uri[bad["uri"].rsplit("/model/", 1)[1]]["status"] == "error"
    finally:
        server.shutdown()


def test_the_audit_log_traces_which_bytes_a_model_holds(admin, tmp_path):
    path = box_stl(tmp_path / "traced.stl", dims=(2, 3, 4))
    body = upload_model(admin, path)
    rows = admin.get(f"/event/?filter[reference]={body['uri']}").json()["resources"]
    keys = {r["key"] for r in rows}
    assert {"status", "volume_mm", "content_sha256"} <= keys
    assert not any(k.startswith("_") for k in keys)
    [content] = [r for r in rows if r["key"] == "content_sha256"]
    assert content["current_value"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_chunked_upload_without_content_length_is_received(admin, tmp_path):
    path = box_stl(tmp_path / "chunked.stl", dims=(5, 6, 7))
    uri, upload = new_model(admin)

    def pieces():  # requests sends a generator with Transfer-Encoding: chunked
        data = path.read_bytes()
        for start in range(0, len(data), 100):
            yield data[start:start + 100]

    assert requests.put(upload, data=pieces(), timeout=60).status_code == 204
    body = settled(admin, uri)
    assert body["status"] == "processed" and body["file_size"] == path.stat().st_size
    assert body["volume_mm"] == pytest.approx(210.0)


def test_a_damaged_file_measured_again_in_another_unit_ends_in_error(admin, system, tmp_path):
    """A new file_unit starts a new round on the stored bytes; if they were damaged meanwhile, that round fails
    with the reason instead of waiting forever."""
    from shared.blobstore import BlobStore
    from shared.settings import blob_dir

    path = box_stl(tmp_path / "later.stl", dims=(3, 3, 3))
    body = upload_model(admin, path)
    stored = BlobStore(blob_dir(system.config)).path(hashlib.sha256(path.read_bytes()).hexdigest())
    original = open(stored, "rb").read()
    try:
        with open(stored, "r+b") as handle:
            handle.seek(100)
            handle.write(bytes([original[100] ^ 0xFF]))
        assert admin.put(body["uri"], json={"file_unit": "in"}).status_code == 204
        failed = settled(admin, body["uri"])
        assert failed["status"] == "error" and "authentication" in failed["analyses"]["error"]
    finally:
        with open(stored, "wb") as handle:
            handle.write(original)
