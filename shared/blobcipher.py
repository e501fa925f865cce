"""Blobs encrypted at rest (files.md §0.2: /content/ "resolves (and decrypts)" the stored blob).

Customer models are a bureau's most sensitive data (orders carry `ip_sensitivity`), so what lands on disk is
AES-256-GCM, written and read as a stream of 1 MiB records, never whole files in memory:

    b"STRB\\x01" · 8-byte random nonce prefix · records
    record = 1-byte flag (0 more, 1 last) · 4-byte big-endian length · ciphertext with its 16-byte tag

Record i is sealed with nonce prefix · i and associated data flag · i, so a changed byte, a reordered or dropped
record, or a cut-off file fails authentication instead of decrypting to something else. Files without the magic
(stored before encryption was on) are read as they are.
"""
import hashlib
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"STRB\x01"
RECORD = 1 << 20
_HEADER = struct.Struct(">BI")
_MORE, _LAST = 0, 1


class Tampered(Exception):
    pass


def blob_key(secret):
    """The blob key, derived from the deployment's secret (so every process that shares the secret can read)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"stratum blob encryption").derive(secret)


def _nonce(prefix, index):
    return prefix + struct.pack(">I", index)


class SealedWriter:
    """File-like sink: write() plaintext, close() seals the last record."""

    def __init__(self, out, key):
        self.out = out
        self.aead = AESGCM(key)
        self.prefix = os.urandom(8)
        self.index = 0
        self.pending = bytearray()
        out.write(MAGIC + self.prefix)

    def _seal(self, data, flag):
        sealed = self.aead.encrypt(_nonce(self.prefix, self.index), bytes(data), bytes([flag]) + struct.pack(
            ">I", self.index))
        self.out.write(_HEADER.pack(flag, len(sealed)) + sealed)
        self.index += 1

    def write(self, data):
        self.pending += data
        while len(self.pending) > RECORD:  # a record is sealed as "more" only once more data follows it
            self._seal(self.pending[:RECORD], _MORE)
            del self.pending[:RECORD]

    def close(self):
        self._seal(self.pending, _LAST)
        self.pending = bytearray()


def plaintext_chunks(handle, key):
    """The plaintext of an open stored file, record by record (Tampered on any inconsistency)."""
    head = handle.read(len(MAGIC))
    if head != MAGIC:  # stored before encryption: the bytes are the plaintext
        yield head
        while chunk := handle.read(RECORD):
            yield chunk
        return
    if key is None:
        raise Tampered("The stored file is encrypted, and this process has no key to read it.")
    aead, prefix, index = AESGCM(key), handle.read(8), 0
    while True:
        header = handle.read(_HEADER.size)
        if len(header) < _HEADER.size:
            raise Tampered("The stored file is cut short.")
        flag, length = _HEADER.unpack(header)
        sealed = handle.read(length)
        if flag not in (_MORE, _LAST) or len(sealed) != length:
            raise Tampered("The stored file is cut short or malformed.")
        try:
            yield aead.decrypt(_nonce(prefix, index), sealed, bytes([flag]) + struct.pack(">I", index))
        except InvalidTag:
            raise Tampered("The stored file fails authentication: it was changed after upload.") from None
        index += 1
        if flag == _LAST:
            if handle.read(1):
                raise Tampered("The stored file has bytes after its last record.")
            return


def digest_of(handle, key):
    """(sha256 hex, size) of an open stored file's plaintext."""
    digest, size = hashlib.sha256(), 0
    for chunk in plaintext_chunks(handle, key):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size
