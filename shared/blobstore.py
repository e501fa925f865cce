"""The blob store: uploaded files, snapshots and bundles on the filesystem, addressed by their SHA-256.

Bytes stream through a fixed-size buffer (a 500 MB model never sits in memory), are encrypted on the way to disk
(shared.blobcipher), land in a temporary file and are moved into place only once complete, so a crash mid-upload
leaves no half blob under a real name. Content addressing makes a re-upload of the same bytes free and lets every
read check that the bytes are still the ones recorded: a blob that fails authentication or whose hash no longer
matches is refused, never served.
"""
import contextlib
import hashlib
import os
import tempfile
from dataclasses import asdict, dataclass

from nameko.extensions import DependencyProvider

from shared.blobcipher import SealedWriter, Tampered, blob_key, digest_of, plaintext_chunks
from shared.settings import blob_dir, secret_key

CHUNK = 1 << 20


class TooLarge(Exception):
    def __init__(self, limit, received):
        super().__init__(f"The file exceeds the {limit:,}-byte limit (more than {received:,} bytes were sent).")
        self.limit = limit
        self.received = received


class CorruptBlob(Exception):
    pass


@dataclass(frozen=True)
class Blob:
    sha256: str
    size: int
    media_type: str = "application/octet-stream"
    name: str = ""

    def as_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        return cls(**{k: data[k] for k in ("sha256", "size", "media_type", "name") if k in data})


class BlobStore:
    def __init__(self, root, key=None):
        """`key` (32 bytes) encrypts what is stored from now on; without one, blobs are stored as they are."""
        self.root = os.path.abspath(root)
        self.key = key
        self._incoming = os.path.join(self.root, "incoming")
        os.makedirs(self._incoming, mode=0o700, exist_ok=True)

    def path(self, sha256):
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise CorruptBlob(f"'{sha256}' is not a blob address.")
        return os.path.join(self.root, sha256[:2], sha256)

    def exists(self, sha256):
        return os.path.exists(self.path(sha256))

    def receive(self, read, limit, media_type="application/octet-stream", name=""):
        """Store what `read(n)` yields until it returns b"", hashing on the way; TooLarge past `limit` bytes."""
        digest, size = hashlib.sha256(), 0
        fd, temp = tempfile.mkstemp(dir=self._incoming)
        try:
            with os.fdopen(fd, "wb") as out:
                sink = SealedWriter(out, self.key) if self.key else out
                while chunk := read(CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(limit, size)
                    digest.update(chunk)
                    sink.write(chunk)
                if self.key:
                    sink.close()
            return self._settle(temp, Blob(digest.hexdigest(), size, media_type, name))
        finally:
            if os.path.exists(temp):
                os.unlink(temp)

    def put_file(self, source, media_type="application/octet-stream", name=""):
        """Store a file the service produced (a snapshot, a zip bundle); the source is left in place."""
        with open(source, "rb") as handle:
            return self.receive(handle.read, float("inf"), media_type, name)

    def _settle(self, temp, blob):
        target = self.path(blob.sha256)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            os.replace(temp, target)  # atomic: a reader sees the whole blob or none
        return blob

    def _check(self, blob):
        """The stored file's path once its plaintext is checked against the recorded hash and size."""
        path = self.path(blob.sha256)
        if not os.path.exists(path):
            raise CorruptBlob("The stored file is missing.")
        try:
            with open(path, "rb") as handle:
                found = digest_of(handle, self.key)
        except Tampered as error:
            raise CorruptBlob(str(error)) from None
        if found != (blob.sha256, blob.size):
            raise CorruptBlob("The stored file no longer matches its recorded SHA-256; it was damaged after upload.")
        return path

    def verified_chunks(self, blob):
        """The blob's plaintext, chunk by chunk, for streaming out. The whole file is checked first, so a damaged
        blob is refused before the first byte goes out (CorruptBlob), not half-way through a download."""
        path = self._check(blob)

        def chunks():
            with open(path, "rb") as handle:
                yield from plaintext_chunks(handle, self.key)
        return chunks()

    @contextlib.contextmanager
    def plaintext_path(self, blob):
        """A path holding the blob's checked plaintext, for tools that read files (the mesh worker): a private
        temporary copy when the blob is encrypted, removed afterwards."""
        fd, temp = tempfile.mkstemp(dir=self._incoming)  # 0600, in the store's own directory
        try:
            digest, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out:
                for chunk in self.verified_chunks(blob):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            if (digest.hexdigest(), size) != (blob.sha256, blob.size):
                raise CorruptBlob("The stored file changed while it was being read.")
            yield temp
        finally:
            os.unlink(temp)

    def remove(self, sha256):
        try:
            os.unlink(self.path(sha256))
        except FileNotFoundError:
            pass



class Blobs(DependencyProvider):
    """nameko dependency: the deployment's blob store (STRATUM_BLOB_DIR), shared by the gateway and files service."""

    def setup(self):
        config = self.container.config
        self.store = BlobStore(blob_dir(config), blob_key(secret_key(config)))

    def get_dependency(self, worker_ctx):
        return self.store
