"""``EntryInfo`` of files in a workspace, and the ``user.e2b.*`` metadata stored on them.

Paths in entries are sandbox paths (``/home/user/x.txt``), never host paths.
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

from pytest_kruise_agents.e2b.workspace import SandboxWorkspace

__all__ = ["OWNER", "entry_info", "file_type", "read_metadata", "write_metadata"]

OWNER = "user"
"""Owner and group reported for every entry (commands run as the host user)."""

# envd keeps file metadata in extended attributes under this prefix.
_XATTR_PREFIX = "user.e2b."

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
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    found: dict[str, str] = {}
    for name in names:
        if name.startswith(_XATTR_PREFIX):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                value = os.getxattr(path, name, follow_symlinks=False)
                found[name.removeprefix(_XATTR_PREFIX)] = value.decode("utf-8")
    return found


def write_metadata(path: Path, metadata: Mapping[str, str]) -> bool:
    """Store ``metadata`` as ``user.e2b.*`` xattrs; ``False`` if the file system refuses."""
    try:
        for key, value in metadata.items():
            os.setxattr(path, _XATTR_PREFIX + key, value.encode("utf-8"))
    except OSError:
        return False
    return True


def entry_info(
    ws: SandboxWorkspace, path: Path, st: os.stat_result | None = None
) -> filesystem_pb.EntryInfo:
    """The ``EntryInfo`` of ``path`` (inside ``ws``, not followed if it is a symlink)."""
    st = st if st is not None else os.lstat(path)
    kind = file_type(st.st_mode)
    is_symlink = kind == FileType.SYMLINK
    symlink_target: str | None = None
    size = st.st_size
    mode = st.st_mode
    if is_symlink:
        raw = os.readlink(path)
        target = Path(os.path.realpath(path))
        if ws.contains(target) and target.exists():
            target_st = os.stat(target)
            kind = file_type(target_st.st_mode)
            size, mode = target_st.st_size, target_st.st_mode
            symlink_target = ws.sandbox_path(target)
        else:
            symlink_target = raw
    return filesystem_pb.EntryInfo(
        name=path.name if path != ws.root else "/",
        type=kind,
        path=ws.sandbox_path(path),
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
