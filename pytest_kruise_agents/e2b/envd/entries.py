"""``EntryInfo`` of files in a workspace, and the ``user.e2b.*`` metadata stored on them.

Paths in entries are sandbox paths (``/home/user/x.txt``), never host paths,
and name the entry as the caller reached it: through ``/home/user/link`` (a
link to ``real``), ``/home/user/link/x.txt``, as envd answers.
A symlink is reported like newer envd does: ``is_symlink`` set, ``type`` the
type of its target, ``symlink_target`` the target's sandbox path. A link
whose target is outside the workspace (or missing) keeps ``type`` SYMLINK and
its raw target text, and is never followed.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from e2b.envd.filesystem import filesystem_pb
from protobuf.wkt import Timestamp

from pytest_kruise_agents.e2b.envd.confined import open_entry
from pytest_kruise_agents.e2b.workspace import PathEscapeError, SandboxWorkspace

__all__ = [
    "MAX_METADATA_BYTES",
    "MAX_METADATA_KEY_BYTES",
    "OWNER",
    "entry_info",
    "file_type",
    "metadata_problem",
    "read_metadata",
    "write_metadata",
]

OWNER = "user"
"""Owner and group reported for every entry (commands run as the host user)."""

# envd keeps file metadata in extended attributes under this prefix.
_XATTR_PREFIX = "user.e2b."

MAX_METADATA_KEY_BYTES = 255 - len(_XATTR_PREFIX)
"""Longest metadata key envd takes: Linux's xattr name limit less the prefix (246)."""

MAX_METADATA_BYTES = 4096
"""Most metadata envd stores on a file: keys, values and one prefix per key."""

FileType = filesystem_pb.FileType


def file_type(mode: int) -> filesystem_pb.FileType:
    """The ``FileType`` of a stat mode (sockets, fifos etc. are UNSPECIFIED, which the SDK skips)."""
    if stat.S_ISREG(mode):
        return FileType.FILE
    if stat.S_ISDIR(mode):
        return FileType.DIRECTORY
    if stat.S_ISLNK(mode):
        return FileType.SYMLINK
    return FileType.UNSPECIFIED


def read_metadata(path: Path) -> dict[str, str]:
    """The ``user.e2b.*`` extended attributes of ``path`` (empty where unsupported)."""
    found: dict[str, str] = {}
    for name, value in _metadata_xattrs(path).items():
        with contextlib.suppress(UnicodeDecodeError):
            found[name.removeprefix(_XATTR_PREFIX)] = value.decode("utf-8")
    return found


def metadata_problem(metadata: Mapping[str, str]) -> str | None:
    """Why envd refuses ``metadata`` (with 400), or ``None`` when it takes it.

    Keys and values are printable US-ASCII (``0x20``-``0x7e``), a key is
    non-empty and at most :data:`MAX_METADATA_KEY_BYTES`, and the keys,
    values and one ``user.e2b.`` prefix per key add up to at most
    :data:`MAX_METADATA_BYTES`.
    """
    total = 0
    for key, value in metadata.items():
        if not key:
            return "metadata key is empty (a bare X-Metadata- header)"
        if not _printable_ascii(key):
            return f"metadata key {key!r} is not printable US-ASCII"
        if len(key) > MAX_METADATA_KEY_BYTES:
            return (
                f"metadata key {key[:32]!r}... is {len(key)} bytes, "
                f"longer than {MAX_METADATA_KEY_BYTES}"
            )
        if not _printable_ascii(value):
            return f"metadata value of {key!r} is not printable US-ASCII"
        total += len(_XATTR_PREFIX) + len(key) + len(value)
    if total > MAX_METADATA_BYTES:
        return f"metadata is {total} bytes in all, more than {MAX_METADATA_BYTES}"
    return None


def _printable_ascii(text: str) -> bool:
    return all(" " <= char <= "~" for char in text)


def write_metadata(path: Path, metadata: Mapping[str, str]) -> bool:
    """Make ``metadata`` the ``user.e2b.*`` xattrs of ``path``; ``False`` if the file system refuses.

    Keys not in ``metadata`` are removed (an empty ``metadata`` clears them
    all), as envd replaces a file's metadata on every upload. ``metadata`` is
    already checked (:func:`metadata_problem`). When the file system refuses
    half-way, what was set is removed again: the file is left without
    metadata, as the upload's answer (no ``metadata``) then says, never with a
    mix of old and new keys.
    """
    try:
        _clear_metadata(path, strict=True)
        for key, value in metadata.items():
            os.setxattr(path, _XATTR_PREFIX + key, value.encode("ascii"), follow_symlinks=False)
    except OSError:
        _clear_metadata(path, strict=False)
        return False
    return True


def _clear_metadata(path: Path, *, strict: bool) -> None:
    """Remove every ``user.e2b.*`` xattr of ``path``; ``strict``: raise the first failure."""
    for name in _metadata_names(path):
        try:
            os.removexattr(path, name, follow_symlinks=False)
        except OSError:
            if strict:
                raise


def _metadata_xattrs(path: Path) -> dict[str, bytes]:
    """The raw ``user.e2b.*`` xattrs of ``path``, by full name."""
    found: dict[str, bytes] = {}
    for name in _metadata_names(path):
        with contextlib.suppress(OSError):
            found[name] = os.getxattr(path, name, follow_symlinks=False)
    return found


def _metadata_names(path: Path) -> list[str]:
    """The full names of the ``user.e2b.*`` xattrs of ``path`` (none where unsupported)."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []
    return [name for name in names if name.startswith(_XATTR_PREFIX)]


def _stat_inside(ws: SandboxWorkspace, target: Path, shown: str) -> os.stat_result | None:
    """The stat of a link's resolved ``target`` if it is inside ``ws`` (reached without a symlink).

    Opened (``O_PATH``) through the workspace rather than stat-ed by name: the
    target checked inside may be swapped for a link leading out meanwhile.
    """
    if not ws.contains(target):
        return None
    try:
        fd = open_entry(ws, target, shown, os.O_PATH)
    except (OSError, PathEscapeError):
        return None  # missing, or no longer inside: reported as a dangling link
    try:
        found = os.fstat(fd)
    finally:
        os.close(fd)
    # O_PATH | O_NOFOLLOW opens a link itself: one that replaced the target meanwhile.
    return None if stat.S_ISLNK(found.st_mode) else found


def entry_info(
    ws: SandboxWorkspace, path: Path, st: os.stat_result | None = None, *, shown: str | None = None
) -> filesystem_pb.EntryInfo:
    """The ``EntryInfo`` of ``path`` (inside ``ws``, not followed if it is a symlink).

    ``shown`` is the sandbox path the caller named it by (its ``path`` and
    ``name``); by default the sandbox path of ``path`` itself.
    """
    shown = shown if shown is not None else ws.sandbox_path(path)
    st = st if st is not None else os.lstat(path)
    kind = file_type(st.st_mode)
    is_symlink = kind == FileType.SYMLINK
    symlink_target: str | None = None
    size = st.st_size
    mode = st.st_mode
    if is_symlink:
        raw = os.readlink(path)
        target = Path(os.path.realpath(path))
        target_st = _stat_inside(ws, target, shown)
        if target_st is not None:
            kind = file_type(target_st.st_mode)
            size, mode = target_st.st_size, target_st.st_mode
            symlink_target = ws.sandbox_path(target)
        else:
            symlink_target = raw
    return filesystem_pb.EntryInfo(
        name=shown.rsplit("/", 1)[-1] or "/",
        type=kind,
        path=shown,
        size=size,
        mode=stat.S_IMODE(mode),
        permissions=stat.filemode(st.st_mode),
        owner=OWNER,
        group=OWNER,
        modified_time=Timestamp.from_datetime(datetime.fromtimestamp(st.st_mtime, UTC)),
        symlink_target=symlink_target,
        metadata=read_metadata(path) if not is_symlink else {},
        is_symlink=is_symlink,
    )
