"""Objects in a local folder (embedded mode): atomic writes, md5 etags, no presigned URLs."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import mimetypes
import os
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

from adapters.interfaces import ObjectInfo, ObjectNotFound

_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._=+@,-]*$")
_COPY_CHUNK = 1024 * 1024


def check_key(key: str) -> str:
    """Return the key when it is a safe relative path of plain segments; raise ValueError otherwise.

    Segments may not start with a dot, so '..', hidden files and our own '.meta'/'.tmp' folders are
    unreachable through a key.
    """
    if not key or len(key) > 1024 or key.startswith("/") or key.endswith("/"):
        raise ValueError(f"invalid storage key: {key!r}")
    if not all(_SEGMENT.match(part) for part in key.split("/")):
        raise ValueError(f"invalid storage key: {key!r}")
    return key


class LocalStorage:
    """Objects as files under `root`; each file's content type and md5 live in a sidecar under `.meta/`."""

    def __init__(self, root: Path, *, chunk_size: int = 256 * 1024) -> None:
        self.root = Path(root)
        self.chunk_size = chunk_size

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root.resolve()):  # symlinked folders must not lead outside
            raise ValueError(f"invalid storage key: {key!r}")
        return path

    def _meta_path(self, key: str) -> Path:
        return self.root / ".meta" / (check_key(key) + ".json")

    async def ensure_ready(self) -> None:
        """Create the folders. Lifecycle rules and access policies do not apply to a local folder."""
        for sub in ("", ".meta", ".tmp"):
            await asyncio.to_thread((self.root / sub).mkdir, parents=True, exist_ok=True)

    # -- writing ----------------------------------------------------------------------------------

    def _write_atomic(self, target: Path, data: bytes | BinaryIO) -> tuple[int, str, os.stat_result]:
        """Write to a temp file in the same filesystem, fsync, then rename over the target."""
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp_dir = self.root / ".tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir)
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, bytes | bytearray | memoryview):
                    out.write(data)
                    digest.update(data)
                    size = len(data)
                else:
                    while chunk := data.read(_COPY_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            stat = os.stat(tmp_name)
            os.replace(tmp_name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        return size, digest.hexdigest(), stat

    def _put(self, key: str, data: bytes | BinaryIO, content_type: str) -> ObjectInfo:
        path = self._path(key)
        size, etag, stat = self._write_atomic(path, data)
        # The sidecar names the inode it describes, so a reader racing a rewrite can tell it is stale.
        meta = {"content_type": content_type, "etag": etag, "size": size, "ino": stat.st_ino}
        self._write_atomic(self._meta_path(key), json.dumps(meta).encode())
        return ObjectInfo(key, size, content_type, etag)

    async def put(self, key: str, data: bytes | BinaryIO, *, content_type: str) -> ObjectInfo:
        return await asyncio.to_thread(self._put, key, data, content_type)

    # -- reading ----------------------------------------------------------------------------------

    def _head(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ObjectNotFound(key) from exc
        if not path.is_file():
            raise ObjectNotFound(key)
        meta: dict[str, Any] = {}
        with contextlib.suppress(FileNotFoundError, ValueError):
            meta = json.loads(self._meta_path(key).read_bytes())
        if meta.get("ino") == stat.st_ino and meta.get("size") == stat.st_size:
            return ObjectInfo(key, stat.st_size, meta["content_type"], meta["etag"])
        # No sidecar (a file copied in by hand) or a stale one: derive what we can from the file.
        digest = hashlib.md5(usedforsecurity=False)
        with path.open("rb") as f:
            while chunk := f.read(_COPY_CHUNK):
                digest.update(chunk)
        guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return ObjectInfo(key, stat.st_size, meta.get("content_type") or guessed, digest.hexdigest())

    async def head(self, key: str) -> ObjectInfo:
        return await asyncio.to_thread(self._head, key)

    def _read(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise ObjectNotFound(key) from exc

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._read, key)

    def _open(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise ObjectNotFound(key) from exc

    async def read_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Stream bytes [start, end] inclusive from an open handle (a concurrent rewrite cannot tear it)."""
        if start < 0 or end < start:
            raise ValueError(f"invalid range {start}-{end}")
        f = await asyncio.to_thread(self._open, key)
        try:
            await asyncio.to_thread(f.seek, start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = await asyncio.to_thread(f.read, min(self.chunk_size, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(f.close)

    # -- the rest ---------------------------------------------------------------------------------

    def _delete(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            for path in (self._path(key), self._meta_path(key)):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    async def delete(self, *keys: str) -> None:
        await asyncio.to_thread(self._delete, keys)

    async def presign_put(self, key: str, *, content_type: str, byte_size: int, expires: int) -> None:
        """A local folder cannot presign; callers fall back to uploading through the API."""
        return None

    async def presign_get(
        self, key: str, *, expires: int, filename: str | None = None, content_type: str | None = None
    ) -> None:
        return None

    async def ping(self) -> None:
        if not await asyncio.to_thread(os.access, self.root, os.W_OK):
            raise OSError(f"storage folder {self.root} is not writable")

    async def close(self) -> None:
        return None
