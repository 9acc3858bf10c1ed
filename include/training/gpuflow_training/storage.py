"""URIs through fsspec: one code path for a local folder, file://, s3://, gs://, az:// and abfs://.

Why stage locally and publish: transformers and torch write to local paths, and object stores have no atomic
rename. A directory is therefore built in a local temp dir, then published: on a local filesystem by one
``os.replace`` (atomic), elsewhere by uploading every file and then a ``COMPLETE`` marker last. Readers trust
only directories that hold the marker, so a node lost mid-upload leaves nothing that looks finished.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from .errors import OutputError

MARKER = "COMPLETE"
_BACKENDS = {
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
}


def backend_hint(uri: str) -> str:
    """The pip package that gives fsspec this URI's scheme, for error messages."""
    scheme = uri.split("://", 1)[0] if "://" in uri else "file"
    return _BACKENDS.get(scheme, "")


def filesystem(uri: str) -> tuple[Any, str]:
    """``(fs, path)`` for a URI; a plain path is local. Raises ImportError when the scheme's backend is missing.

    ``az://ACCOUNT/CONTAINER/PATH`` names the storage account, as gpuflow's model download (rclone) reads it;
    adlfs alone would take ACCOUNT for the container, so the account is given to it and dropped from the path.
    Credentials come from the pod's environment (workload identity, or ``AZURE_STORAGE_CONNECTION_STRING``).
    """
    import fsspec

    scheme, _, rest = uri.partition("://")
    if scheme == "az":
        account, _, path = rest.partition("/")
        if not account or not path:
            raise ValueError("an Azure Blob URI is az://ACCOUNT/CONTAINER/PATH")
        return fsspec.filesystem("az", account_name=account), path
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def is_local(fs: Any) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


class Store:
    """The run's output root: ``checkpoints/step-XXXXXXXX/``, ``model/`` and ``progress.json``."""

    def __init__(self, output_uri: str) -> None:
        try:
            self.fs, self.root = filesystem(output_uri)
        except ImportError as exc:
            hint = backend_hint(output_uri)
            raise OutputError(
                f"output URI {output_uri!r}: no filesystem for its scheme ({exc}); "
                f"install {hint or 'the fsspec backend for it'} in the training image"
            ) from exc
        except ValueError as exc:
            raise OutputError(f"output URI {output_uri!r} is not a valid URI: {exc}") from exc
        self.uri = output_uri
        self.local = is_local(self.fs)

    def check_writable(self) -> None:
        """Fail before training, not after an hour of it, when the output cannot be written."""
        probe = join(self.root, f".write-probe-{uuid.uuid4().hex[:8]}")
        try:
            self.fs.makedirs(self.root, exist_ok=True)
            self.fs.pipe_file(probe, b"ok")
            self.fs.rm_file(probe)
        except Exception as exc:
            raise OutputError(
                f"cannot write to output URI {self.uri!r}: {exc}; check the path and the "
                "pod's credentials (workload identity / IRSA) for that bucket"
            ) from exc

    def path(self, *parts: str) -> str:
        return join(self.root, *parts)

    def staging_dir(self, name: str) -> Path:
        """A local dir to build ``name`` in; beside the target on a local fs so the publish is a rename."""
        if self.local:
            parent = Path(self.path(os.path.dirname(name) or "."))
            parent.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkdtemp(prefix=f".staging-{os.path.basename(name)}-", dir=parent))
        return Path(tempfile.mkdtemp(prefix="gpuflow-staging-"))

    def publish(self, staged: Path, name: str) -> str:
        """Make ``staged`` visible as ``name`` all at once (see module doc); returns the target path."""
        target = self.path(name)
        _readable(staged)
        if self.local:
            (staged / MARKER).write_text("ok\n")
            if os.path.exists(target):  # a retry re-publishing the same step: the new copy wins
                shutil.rmtree(target)
            os.replace(staged, target)
            return target
        if self.fs.exists(target):
            self.fs.rm(target, recursive=True)
        for file in sorted(p for p in staged.rglob("*") if p.is_file()):
            self.fs.put_file(str(file), join(target, file.relative_to(staged).as_posix()))
        self.fs.pipe_file(join(target, MARKER), b"ok\n")
        shutil.rmtree(staged, ignore_errors=True)
        return target

    def write_file(self, name: str, data: bytes) -> None:
        """Replace the small file ``name`` all at once: a reader sees the old content or the new, never a part.

        A rename from beside it on a local filesystem; elsewhere one upload (an object appears whole or not at all).
        """
        target = self.path(name)
        if not self.local:
            self.fs.pipe_file(target, data)
            return
        fd, staged = tempfile.mkstemp(prefix=f".staging-{os.path.basename(name)}-", dir=os.path.dirname(target))
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.chmod(staged, 0o644)  # mkstemp makes 0600; the reader may run as another user
        os.replace(staged, target)

    def read_file(self, name: str) -> bytes:
        """The content of the file ``name``; raises FileNotFoundError when there is none."""
        return bytes(self.fs.cat_file(self.path(name)))

    def is_complete(self, name: str) -> bool:
        return bool(self.fs.exists(self.path(name, MARKER)))

    def list_dirs(self, name: str) -> list[str]:
        """Base names of the entries under ``name`` (empty if it does not exist)."""
        where = self.path(name)
        if not self.fs.exists(where):
            return []
        return [str(p).rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(where, detail=False)]

    def remove(self, name: str) -> None:
        where = self.path(name)
        if self.fs.exists(where):
            self.fs.rm(where, recursive=True)

    def fetch(self, name: str) -> Path:
        """A local path holding ``name``: the directory itself when local, else a downloaded copy."""
        if self.local:
            return Path(self.path(name))
        local = Path(tempfile.mkdtemp(prefix="gpuflow-fetch-"))
        self.fs.get(self.path(name) + "/", str(local) + "/", recursive=True)
        return local


def fetch_dir(uri: str) -> Path:
    """A local copy (or the dir itself) of a model directory at a URI, for ``from_pretrained``."""
    fs, path = filesystem(uri)
    if is_local(fs):
        return Path(path)
    local = Path(tempfile.mkdtemp(prefix="gpuflow-base-model-"))
    fs.get(path.rstrip("/") + "/", str(local) + "/", recursive=True)
    return local


def _readable(directory: Path) -> None:
    """mkdtemp makes 0700 and safetensors 0600; the server reading the model may run as another user."""
    directory.chmod(0o755)
    for path in directory.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
