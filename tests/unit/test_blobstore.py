"""The blob store: streamed in, encrypted at rest, checked on the way out."""
import hashlib
import io
import os

import pytest

from shared import blobcipher
from shared.blobstore import BlobStore, CorruptBlob, TooLarge

KEY = blobcipher.blob_key(b"test secret")


def store_bytes(store, data):
    return store.receive(io.BytesIO(data).read, limit=1 << 30, name="part.stl")


@pytest.mark.parametrize("size", [0, 10, blobcipher.RECORD, blobcipher.RECORD + 1, 3 * blobcipher.RECORD + 5])
def test_round_trip_of_any_size(tmp_path, size):
    data = os.urandom(size)
    store = BlobStore(tmp_path, KEY)
    blob = store_bytes(store, data)
    assert (blob.sha256, blob.size) == (hashlib.sha256(data).hexdigest(), size)
    assert b"".join(store.verified_chunks(blob)) == data
    with store.plaintext_path(blob) as path:
        assert open(path, "rb").read() == data
    assert not os.path.exists(path)  # the plaintext copy is gone afterwards


def test_what_lands_on_disk_is_not_the_plaintext(tmp_path):
    data = b"solid secret_customer_part\n" * 1000
    store = BlobStore(tmp_path, KEY)
    blob = store_bytes(store, data)
    on_disk = open(store.path(blob.sha256), "rb").read()
    assert on_disk.startswith(blobcipher.MAGIC) and b"secret_customer_part" not in on_disk


@pytest.mark.parametrize("damage", ["flip", "truncate", "drop_last_record", "append"])
def test_any_damage_is_refused(tmp_path, damage):
    store = BlobStore(tmp_path, KEY)
    blob = store_bytes(store, os.urandom(2 * blobcipher.RECORD + 100))
    path = store.path(blob.sha256)
    raw = bytearray(open(path, "rb").read())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0x01
    elif damage == "truncate":
        raw = raw[:-10]
    elif damage == "drop_last_record":
        raw = raw[:len(blobcipher.MAGIC) + 8 + 2 * (5 + blobcipher.RECORD + 16)]
    else:
        raw += b"\x00"
    open(path, "wb").write(bytes(raw))
    with pytest.raises(CorruptBlob):
        store.verified_chunks(blob)
    with pytest.raises(CorruptBlob), store.plaintext_path(blob):
        pass


def test_the_wrong_key_cannot_read(tmp_path):
    blob = store_bytes(BlobStore(tmp_path, KEY), b"abc")
    with pytest.raises(CorruptBlob):
        BlobStore(tmp_path, blobcipher.blob_key(b"other secret")).verified_chunks(blob)


def test_blobs_stored_before_encryption_are_still_read(tmp_path):
    data = b"plain bytes from an earlier deployment"
    blob = store_bytes(BlobStore(tmp_path), data)  # no key: stored as is
    assert b"".join(BlobStore(tmp_path, KEY).verified_chunks(blob)) == data


def test_the_size_limit_stops_the_stream(tmp_path):
    store = BlobStore(tmp_path, KEY)
    with pytest.raises(TooLarge):
        store.receive(io.BytesIO(b"x" * 100).read, limit=99)
    assert os.listdir(os.path.join(tmp_path, "incoming")) == []  # nothing half-written is left
