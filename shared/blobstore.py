"""The blob store: uploaded files, snapshots and bundles on the filesystem, addressed by their SHA-256.

Bytes stream through a fixed-size buffer (a 500 MB model never sits in memory), land in a temporary file and are
moved into place only once complete, so a crash mid-upload leaves no half blob under a real name. Content
addressing makes a re-upload of the same bytes free and lets every read check that the bytes are still the ones
recorded: a blob whose hash no longer matches is refused, never served.
"""
import hashlib
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass

from nameko.extensions import DependencyProvider

from shared.config import blob_dir

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
    def __init__(self, root):
        self.root = os.path.abspath(root)
        self._incoming = os.path.join(self.root, "incoming")
        os.makedirs(self._incoming, exist_ok=True)

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
                while chunk := read(CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(limit, size)
                    digest.update(chunk)
                    out.write(chunk)
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

    def verified_path(self, blob):
        """The blob's path once its bytes are checked against the recorded hash and size (CorruptBlob if not)."""
        path = self.path(blob.sha256)
        if not os.path.exists(path):
            raise CorruptBlob("The stored file is missing.")
        if os.path.getsize(path) != blob.size:
            raise CorruptBlob("The stored file has the wrong size; it was damaged after upload.")
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != blob.sha256:
            raise CorruptBlob("The stored file no longer matches its recorded SHA-256; it was damaged after upload.")
        return path

    def remove(self, sha256):
        try:
            os.unlink(self.path(sha256))
        except FileNotFoundError:
            pass

    def copy_out(self, blob, destination):
        shutil.copyfile(self.verified_path(blob), destination)



class Blobs(DependencyProvider):
    """nameko dependency: the deployment's blob store (STRATUM_BLOB_DIR), shared by the gateway and files service."""

    def setup(self):
        self.store = BlobStore(blob_dir(self.container.config))

    def get_dependency(self, worker_ctx):
        return self.store
