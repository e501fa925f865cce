"""Order file bundles (/zipfile/): the background compilation and the deletion at expiry (files.md §2.8)."""
import os
import tempfile
import zipfile

from services.files.processing import Pipeline
from shared.blobstore import Blob, CorruptBlob
from shared.uris import uuid_of


class Bundles(Pipeline):
    """files.md §2.8: compile an order's bundle, and delete it at its expiry (same idempotent steps as uploads)."""

    def compile_zipfile(self, zipfile_path):
        uuid = uuid_of(zipfile_path)
        zipfile_ = self.app.load("zipfile", uuid, {"platform_admin": True})
        if zipfile_.fields.get("status") == "pending":
            self._step("zipfile", uuid, "start", {}, "start")
        elif zipfile_.fields.get("status") != "processing":
            return
        manifest = zipfile_.fields.get("manifest") or {}
        fd, out = tempfile.mkstemp(suffix=".zip")
        os.close(fd)
        try:
            with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
                names = set()
                for model_path in manifest.get("models", []):
                    model = self.app.get_upload("model", uuid_of(model_path))
                    name = _unique(_archive_name(model.fields.get("name") or "model", model.fields.get("type")), names)
                    with bundle.open(name, "w", force_zip64=True) as member:  # streamed, decrypted
                        for chunk in self.blobs.verified_chunks(Blob.from_dict(model.content)):
                            member.write(chunk)
            related = (zipfile_.fields.get("related_uuid") or "")[:8]
            blob = self.blobs.put_file(out, "application/zip", f"order-{related}.zip")
            self._step("zipfile", uuid, "complete", {"blob": blob.as_dict()}, "complete")
        except (CorruptBlob, OSError) as error:
            self._step("zipfile", uuid, "fail", {"reason": f"Bundling failed: {error}"}, "fail")
        finally:
            os.unlink(out)

    def expire_zipfile(self, zipfile_):
        blob = zipfile_.fields.get("_content")
        self._step("zipfile", str(zipfile_.id), "expire", {}, "expire")
        if blob:
            self.blobs.remove(blob["sha256"])


def _archive_name(name, kind):
    """A member name that is only a file name: no directories, no '..', nothing a careless unzip would misplace."""
    base = "".join(c if c.isalnum() or c in "-_. " else "_" for c in name.replace("\\", "/").rsplit("/", 1)[-1])
    base = base.strip(". ") or "model"
    extension = f".{kind or 'stl'}"
    return base if base.lower().endswith(extension) else base + extension


def _unique(name, taken):
    stem, dot, extension = name.rpartition(".")
    candidate, n = name, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{stem} ({n}).{extension}"
    taken.add(candidate.lower())
    return candidate

