"""envd's ``/files``: download a file, upload one or several (multipart or raw bytes).

``GET /files?path=`` answers the raw bytes; a pause or kill of the sandbox
cuts a download in progress (:class:`~.streams.CutOnStop`). ``POST /files`` takes either
``multipart/form-data`` with ``file`` parts (each written to the ``path``
query parameter if given, else to the part's filename, which the SDK sets to
the full sandbox path) or ``application/octet-stream`` (optionally
``Content-Encoding: gzip``) written to ``path``; it answers 200 with
``[{"name", "type": "file", "path"}]``. ``X-Metadata-<key>`` headers
replace the file's metadata (``user.e2b.<key>`` extended attributes; none
clears it), under envd's rules (:func:`_metadata`).

An upload is all or nothing: the body is staged outside the sandbox
directory and moved into place only once it is complete and every target
checked, against the disk and against the upload's other targets (a file
that another part would need as a directory), so a refused upload (bad path,
conflicting parts, bad metadata, too large, bad body) changes nothing. Moved
into place means written over an existing file in place (it keeps its inode
and mode, as envd's ``O_TRUNC`` open does) or renamed to a new name.

A sandbox paused or killed before the upload is committed gets none of it
(:class:`~pytest_kruise_agents.e2b.workspace.SandboxStopped`, which the app
answers as the proxy answers a stopped sandbox).

A part's filename is read from its raw header bytes as UTF-8, as Go's
``mime.ParseMediaType`` reads it (:mod:`.mediatype`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import uuid
import weakref
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import anyio
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send

from pytest_kruise_agents.e2b.envd.auth import (
    AuthError,
    check_token,
    user_from_name,
    verify_signature,
)
from pytest_kruise_agents.e2b.envd.confined import CHANGED, DIR_FLAGS, at, open_dir, open_entry
from pytest_kruise_agents.e2b.envd.entries import metadata_problem, write_metadata
from pytest_kruise_agents.e2b.envd.errors import http_error, http_status_of
from pytest_kruise_agents.e2b.envd.mediatype import parse_media_type
from pytest_kruise_agents.e2b.envd.streams import CutOnStop
from pytest_kruise_agents.e2b.workspace import PathEscapeError, SandboxWorkspace

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "UploadRefused", "download", "upload"]

DEFAULT_MAX_UPLOAD_BYTES = 100 * 1024 * 1024
"""Largest upload (per request, after gzip decoding) ``POST /files`` accepts."""

_METADATA_PREFIX = b"x-metadata-"

# What a multipart body may carry beyond its files' bytes (parts' headers and
# boundaries): the limit counts the files, so a file of exactly the limit fits.
_MULTIPART_FRAMING_BYTES = 64 * 1024


class UploadRefused(Exception):
    """An upload is refused with HTTP ``status`` (nothing was written)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


def _authorize(request: Request, ws: SandboxWorkspace, operation: str) -> str:
    """Check the token or URL signature; return the user the request acts as."""
    params = request.query_params
    username = params.get("username") or ""
    user = user_from_name(username)
    if check_token(ws, request.headers.get("x-access-token")):
        return user
    signature = params.get("signature")
    if signature is None:
        raise AuthError("missing or invalid X-Access-Token (or a signed URL) for /files")
    verify_signature(
        ws,
        path=params.get("path") or "",
        operation=operation,
        username=username,
        signature=signature,
        expiration=params.get("signature_expiration"),
    )
    return user


async def download(request: Request, ws: SandboxWorkspace) -> Response:
    """``GET /files?path=``: the file's bytes, or a JSON error."""
    try:
        user = _authorize(request, ws, "read")
        path = request.query_params.get("path")
        if not path:
            return http_error(400, "path: the query parameter is required")
        target = ws.resolve(path, user=user)
    except AuthError as exc:
        return http_error(401, str(exc))
    except PathEscapeError as exc:
        return http_error(400, str(exc))
    try:
        # Opened once, by descriptor (a file swapped for a link after the check is
        # refused, not followed), then stat-ed and sent from that descriptor.
        # O_NONBLOCK: a FIFO put there must not hang the open.
        fd = open_entry(ws, target, path, os.O_RDONLY | os.O_NONBLOCK)
    except PathEscapeError as exc:
        return http_error(400, str(exc))
    except FileNotFoundError:
        return http_error(404, f"file not found: {path}")
    except OSError as exc:
        # 507 for a full disk, 500 for a host out of descriptors or memory, else 400.
        return http_error(
            http_status_of(exc), f"cannot read {path}: {(exc.strerror or str(exc)).lower()}"
        )
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        if stat.S_ISDIR(st.st_mode):
            return http_error(400, f"path is a directory: {path}")
        return http_error(400, f"path is not a regular file: {path}")
    body = _OpenFileResponse(fd, st, filename=target.name)
    # A stop drops the connection mid-download, as E2B's teardown does.
    return CutOnStop(body, ws)


class _OpenFileResponse(FileResponse):
    """A :class:`FileResponse` sending a file already open (``fd``, which it owns), never by name.

    Starlette reopens its ``path`` by name; here every read (each range)
    reads a duplicate of the descriptor the download checked. ``path`` names
    the same open file (``/proc/self/fd/<fd>``) for a server that sends files
    itself (ASGI ``pathsend``).
    """

    def __init__(self, fd: int, st: os.stat_result, *, filename: str) -> None:
        super().__init__(
            f"/proc/self/fd/{fd}",
            media_type="application/octet-stream",
            filename=filename,
            stat_result=st,
        )
        self._fd = fd
        # Closed once sent, or when dropped unsent (a stop before the headers).
        self._close = weakref.finalize(self, os.close, fd)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._close()

    @contextlib.asynccontextmanager
    async def _open_file(self) -> AsyncIterator[anyio.AsyncFile[bytes]]:
        file = anyio.wrap_file(os.fdopen(os.dup(self._fd), "rb"))
        try:
            yield file
        finally:
            with anyio.CancelScope(shield=True):
                await file.aclose()


@dataclass
class _Staged:
    """One file being uploaded: where it goes and where its bytes wait meanwhile."""

    target: Path
    path: str
    shown: str  # the sandbox path as the request named it (symlinks not followed)
    temp: Path
    handle: IO[bytes] | None = None


@dataclass
class _Upload:
    """The files of one upload request, staged until :meth:`commit`."""

    ws: SandboxWorkspace
    user: str
    limit: int
    staging: Path
    files: list[_Staged] = field(default_factory=list)
    written: int = 0
    targets: set[Path] = field(default_factory=set)
    implied_dirs: set[Path] = field(default_factory=set)

    def open(self, path: str) -> _Staged:
        """Check ``path`` as an upload target and open its staging file."""
        target = self.ws.resolve(path, user=self.user)
        _check_target(self.ws, target, path)
        self._check_against_others(target, path)
        self.staging.mkdir(parents=True, exist_ok=True)
        shown = self.ws.expand(path, user=self.user)
        staged = _Staged(target, path, shown, self.staging / uuid.uuid4().hex)
        staged.handle = open(staged.temp, "xb")  # noqa: SIM115 - closed by close()/discard()
        self.files.append(staged)
        return staged

    def _check_against_others(self, target: Path, path: str) -> None:
        """Refuse a target that conflicts with another target of the same upload.

        Put in place one by one, a file that a later part needs as a directory
        (``a`` then ``a/b``), or a file where an earlier part needs a directory
        (``c/d`` then ``c``), fails half-way: refused here, before anything
        moves. The same path twice is allowed; the last part wins, as envd
        writes the parts in order.
        """
        if target in self.implied_dirs:
            raise UploadRefused(
                400, f"path is a directory: {path} (another file of the upload goes under it)"
            )
        if any(parent in self.targets for parent in target.parents):
            raise UploadRefused(
                400,
                f"a parent of {path} is not a directory (another file of the upload is written there)",
            )
        self.targets.add(target)
        self.implied_dirs.update(target.parents)

    def write(self, staged: _Staged, data: bytes) -> None:
        """Append ``data`` to a staged file, within the request's size limit."""
        self.written += len(data)
        if self.written > self.limit:
            raise UploadRefused(413, f"upload exceeds the limit of {self.limit} bytes")
        assert staged.handle is not None
        staged.handle.write(data)

    def close(self, staged: _Staged) -> None:
        """Finish writing a staged file."""
        if staged.handle is not None:
            staged.handle.close()
            staged.handle = None

    def commit(self, metadata: dict[str, str]) -> list[dict[str, object]]:
        """Move every staged file into place, with ``metadata``; the upload's JSON answer.

        Raises :class:`SandboxStopped` (nothing moved) if the sandbox stopped meanwhile.
        """
        # The sandbox may have been paused or killed while the body streamed in:
        # a killed one's directory must not come back, a paused one must not change.
        self.ws.require_running()
        for staged in self.files:
            self.close(staged)
            # Resolved and checked again as the last step before any change: while
            # the body streamed in, a command may have made a directory (or a file)
            # there, or replaced the target or a parent by a symlink leading out.
            staged.target = self.ws.resolve(staged.path, user=self.user)
            _check_target(self.ws, staged.target, staged.path)
        answer: list[dict[str, object]] = []
        for staged in self.files:
            stored = _put(self.ws, staged, metadata)
            # Named as requested, as envd answers: through a link, the link's path.
            item: dict[str, object] = {
                "name": staged.shown.rsplit("/", 1)[-1],
                "type": "file",
                "path": staged.shown,
            }
            if metadata and stored:
                item["metadata"] = dict(metadata)
            answer.append(item)
        return answer

    def discard(self) -> None:
        """Drop every staged file (the upload failed)."""
        for staged in self.files:
            self.close(staged)
            with contextlib.suppress(OSError):
                staged.temp.unlink()


def _put(ws: SandboxWorkspace, staged: _Staged, metadata: dict[str, str]) -> bool:
    """Move a complete staged file to its target, keeping an existing file's inode and mode.

    envd opens the target with ``O_WRONLY|O_CREAT|O_TRUNC``: a file already
    there keeps its mode, owner and links, and a new one gets 0o666 less the
    umask (as the staging file was created). So an existing regular file is
    overwritten in place, from the staged copy. Either way the file's
    metadata becomes ``metadata`` (none clears it), as envd replaces it on
    every upload. ``False`` if the file system refused the metadata.

    Everything happens relative to the target's parent directory, reached
    from the sandbox root without following a symlink (:mod:`.confined`): a
    link that replaced the target or a parent since the last check is refused,
    never written through.
    """
    parent = open_dir(ws, staged.target.parent, staged.path, create=True)
    try:
        return _put_at(parent, staged.target.name, staged, metadata)
    finally:
        os.close(parent)


def _put_at(parent: int, name: str, staged: _Staged, metadata: dict[str, str]) -> bool:
    """:func:`_put` into directory ``parent`` (a descriptor) as ``name``."""
    temp = staged.temp
    try:
        st: os.stat_result | None = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise PathEscapeError(staged.path, CHANGED)
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise UploadRefused(400, f"path is a directory: {staged.path}")
    if st is not None and stat.S_ISREG(st.st_mode):
        try:
            # O_NOFOLLOW: a link put there since the stat is refused (ELOOP), not opened.
            fd = os.open(
                name, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent
            )
        except PermissionError:
            # No write bit: envd writes as root, whom that does not stop. A new
            # inode with the old mode is the nearest the server's user can do;
            # its metadata is set first, as a user xattr needs the write bit.
            stored = write_metadata(temp, metadata)
            os.chmod(temp, stat.S_IMODE(st.st_mode))
        else:
            with os.fdopen(fd, "wb") as out, open(temp, "rb") as source:
                shutil.copyfileobj(source, out)
            with contextlib.suppress(OSError):
                temp.unlink()
            return write_metadata(at(parent, name), metadata)
    else:
        stored = write_metadata(temp, metadata)
    # A rename replaces whatever is at ``name`` (a link itself, never its target).
    os.replace(temp, name, dst_dir_fd=parent)
    return stored


def _check_target(ws: SandboxWorkspace, target: Path, path: str) -> None:
    """Refuse a target that is a directory or lies under a non-directory.

    Walked from the workspace root one component at a time (``dir_fd``): the
    host path, longer than the sandbox's by the root's, may pass ``PATH_MAX``
    where the sandbox path does not. A symlink met on the way is left to the
    placement, which refuses it (:mod:`.confined`).
    """
    if target == ws.root:
        raise UploadRefused(400, f"path is a directory: {path}")
    parts = target.relative_to(ws.root).parts
    fd = os.open(ws.root, DIR_FLAGS)
    try:
        for i, name in enumerate(parts):
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return  # the rest is made as directories
            if stat.S_ISLNK(st.st_mode):
                return
            if i == len(parts) - 1:
                if stat.S_ISDIR(st.st_mode):
                    raise UploadRefused(400, f"path is a directory: {path}")
                return
            if not stat.S_ISDIR(st.st_mode):
                raise UploadRefused(400, f"a parent of {path} is not a directory")
            child = os.open(name, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)


async def upload(request: Request, ws: SandboxWorkspace, *, limit: int) -> Response:
    """``POST /files``: write the uploaded file(s); answer what was written, or a JSON error."""
    try:
        user = _authorize(request, ws, "write")
    except AuthError as exc:
        return http_error(401, str(exc))
    content_type, options = parse_options_header(request.headers.get("content-type"))
    declared = request.headers.get("content-length")
    framing = _MULTIPART_FRAMING_BYTES if content_type == b"multipart/form-data" else 0
    if declared is not None and declared.isdigit() and int(declared) > limit + framing:
        # Early, before any byte is read: no file of it can fit.
        return http_error(413, f"upload exceeds the limit of {limit} bytes")
    try:
        metadata = _metadata(request)
    except UploadRefused as exc:
        return http_error(exc.status, str(exc))
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    job = _Upload(ws, user, limit, ws.root.parent / ".uploads")
    try:
        if content_type == b"multipart/form-data":
            if encoding not in ("", "identity"):
                raise UploadRefused(
                    400, "Content-Encoding is only supported for octet-stream uploads"
                )
            boundary = options.get(b"boundary")
            if not boundary:
                raise UploadRefused(400, "Content-Type: multipart/form-data needs a boundary")
            await _read_multipart(request, job, boundary)
        elif content_type == b"application/octet-stream":
            await _read_octet_stream(request, job, encoding)
        else:
            raise UploadRefused(
                400,
                "Content-Type must be multipart/form-data or application/octet-stream, "
                f"not {content_type.decode('latin-1')!r}",
            )
        return JSONResponse(job.commit(metadata))
    except UploadRefused as exc:
        job.discard()
        return http_error(exc.status, str(exc))
    except PathEscapeError as exc:
        job.discard()
        return http_error(400, str(exc))
    except OSError as exc:
        job.discard()
        # 507 (NotEnoughSpaceException) for a full disk or quota, 500 for a host out
        # of descriptors or memory: neither is the caller's mistake, unlike the 400s.
        return http_error(
            http_status_of(exc),
            f"cannot write the upload: {(exc.strerror or str(exc)).lower()}",
        )
    except ClientDisconnect:
        job.discard()
        return http_error(400, "the client disconnected before the upload was complete")
    except BaseException:
        job.discard()
        raise


def _metadata(request: Request) -> dict[str, str]:
    """The file metadata of an upload's ``X-Metadata-<key>`` headers, checked as envd checks it.

    The key is the lower-cased rest of the header name; a repeated header
    counts with its first value. Keys and values must be printable US-ASCII,
    a key at most 246 bytes and the whole at most 4096 (:func:`metadata_problem`):
    anything else refuses the upload with 400 before it changes anything.
    """
    metadata: dict[str, str] = {}
    for name, value in request.headers.raw:
        lowered = name.lower()
        if lowered.startswith(_METADATA_PREFIX):
            # Latin-1 maps every byte to one character: a byte outside
            # printable ASCII (UTF-8 text, a tab) stays visible to the check.
            key = lowered.removeprefix(_METADATA_PREFIX).decode("latin-1")
            metadata.setdefault(key, value.decode("latin-1"))
    problem = metadata_problem(metadata)
    if problem is not None:
        raise UploadRefused(400, problem)
    return metadata


async def _read_octet_stream(request: Request, job: _Upload, encoding: str) -> None:
    path = request.query_params.get("path")
    if not path:
        raise UploadRefused(400, "path: the query parameter is required for octet-stream uploads")
    if encoding == "gzip":
        # 16 + MAX_WBITS: expect a gzip header and trailer.
        inflater: zlib._Decompress | None = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding in ("", "identity"):
        inflater = None
    else:
        raise UploadRefused(400, f"Content-Encoding {encoding!r} is not supported (use gzip)")
    staged = job.open(path)
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > job.limit:
                raise UploadRefused(413, f"upload exceeds the limit of {job.limit} bytes")
            if inflater is None:
                job.write(staged, chunk)
                continue
            # Bounded inflation: a small gzip bomb must not fill memory or disk. One byte
            # past what the limit leaves: inflation that stops there (input left over)
            # has passed the limit, which write() refuses with 413.
            data = inflater.decompress(chunk, job.limit - job.written + 1)
            job.write(staged, data)
        if inflater is not None:
            job.write(staged, inflater.flush())
            if not inflater.eof:
                raise UploadRefused(400, "the gzip body is truncated")
    except zlib.error as exc:
        raise UploadRefused(400, f"the body is not valid gzip: {exc}") from exc
    finally:
        job.close(staged)


class _MultipartReader:
    """python-multipart callbacks writing each ``file`` part to a staged file."""

    def __init__(self, job: _Upload, path: str | None) -> None:
        self.job = job
        self.path = path
        self.headers: dict[str, bytes] = {}
        self._field = b""
        self._value = b""
        self._current: _Staged | None = None
        self.complete = False

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self.headers = {}
        self._current = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        # Raw bytes: the filename is UTF-8 (httpx, browsers), as Go's reader keeps it.
        # The first of repeated headers counts, as for Go's Header.Get.
        self.headers.setdefault(self._field.decode("latin-1").lower(), self._value.strip())
        self._field = self._value = b""

    def on_headers_finished(self) -> None:
        raw = self.headers.get("content-disposition", b"").decode("utf-8", "replace")
        disposition, params = parse_media_type(raw) or ("", {})
        if disposition != "form-data" or params.get("name") != "file":
            return  # not a file part (Go's Part.FormName): ignored, as envd does
        filename = params.get("filename", "")
        target = self.path or filename
        if not target:
            raise UploadRefused(
                400, "a file part has no filename and the path query parameter is missing"
            )
        self._current = self.job.open(target)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current is not None:
            self.job.write(self._current, data[start:end])

    def on_part_end(self) -> None:
        if self._current is not None:
            self.job.close(self._current)
            self._current = None

    def on_end(self) -> None:
        self.complete = True


async def _read_multipart(request: Request, job: _Upload, boundary: bytes) -> None:
    reader = _MultipartReader(job, request.query_params.get("path") or None)
    parser = MultipartParser(boundary, reader.callbacks())
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > job.limit + _MULTIPART_FRAMING_BYTES:
                raise UploadRefused(413, f"upload exceeds the limit of {job.limit} bytes")
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise UploadRefused(400, f"malformed multipart body: {exc}") from exc
    if not reader.complete:
        raise UploadRefused(400, "the multipart body is truncated (no closing boundary)")
    if not job.files:
        raise UploadRefused(400, "the multipart body has no 'file' part")
