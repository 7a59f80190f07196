"""Reaching a checked sandbox path again without leaving the sandbox, whatever changed since.

:meth:`~pytest_kruise_agents.e2b.workspace.SandboxWorkspace.resolve` checks a
path once; a command in the sandbox (commands run on the host) may replace a
directory or a file on it by a symlink leading out right after, while an
upload's body is still arriving, between a download's check and its open, or
between two polls of a watch. Every file operation of envd therefore uses
the resolved host path only to know *which* entry it means, and reaches that
entry again from the workspace root one component at a time, each opened with
``O_DIRECTORY | O_NOFOLLOW`` relative to the one before (openat-style); the
operation then acts relative to the directory file descriptor it ends on
(``dir_fd=``, never a host path). A resolved path has no symlink in it, so a
symlink met on the way appeared since the check: the operation is refused
(:class:`~pytest_kruise_agents.e2b.workspace.PathEscapeError`, ``invalid_argument``
/ 400) instead of following it. The one symlink a resolved path keeps is a
loop (it resolves to no end): that reads as the ELOOP ``OSError`` it is.

Calls that take no ``dir_fd`` (extended attributes, ``lstat``-based entry
info) use :func:`pinned`'s ``/proc/self/fd/<fd>/<name>``: the kernel walks
the magic link to the directory already open, never the directory's name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from pytest_kruise_agents.e2b.workspace import PathEscapeError, SandboxWorkspace

__all__ = ["CHANGED", "DIR_FLAGS", "at", "open_dir", "open_entry", "pinned"]

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
"""How each directory on the way is opened: never through a symlink."""

CHANGED = "changed while in use (a symlink replaced part of it)"
"""Why a path is refused when a symlink appeared on it after the check."""


def open_dir(ws: SandboxWorkspace, directory: Path, path: str, *, create: bool = False) -> int:
    """A file descriptor of ``directory`` (resolved, inside ``ws``), reached without a symlink.

    ``path`` is the sandbox path the request named (for errors). ``create``
    makes missing directories on the way, as ``mkdir -p``. Raises
    :class:`PathEscapeError` if a component is (now) a symlink, or outside the
    workspace, an ``OSError`` (ELOOP) if one is a loop of symlinks, :class:`NotADirectoryError` if one is something else,
    :class:`FileNotFoundError` if one is missing (without ``create``). The
    caller closes the descriptor.
    """
    if not ws.contains(directory):
        raise PathEscapeError(path, "resolves outside the sandbox (through a symlink)")
    fd = os.open(ws.root, DIR_FLAGS)
    try:
        for name in directory.relative_to(ws.root).parts:
            child = _step(fd, name, path, create=create)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _step(parent: int, name: str, path: str, *, create: bool) -> int:
    """Open directory ``name`` under ``parent`` (made first if missing and ``create``)."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        if not create:
            raise
    except NotADirectoryError:
        # O_DIRECTORY | O_NOFOLLOW answers ENOTDIR for a symlink too.
        if _is_link(parent, name):
            raise _refusal(parent, name, path) from None
        raise
    with contextlib.suppress(FileExistsError):  # made meanwhile: opened below all the same
        os.mkdir(name, dir_fd=parent)
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent)
    except NotADirectoryError:
        if _is_link(parent, name):
            raise _refusal(parent, name, path) from None
        raise


def _refusal(parent: int, name: str, path: str) -> OSError | PathEscapeError:
    """Why the symlink ``name`` under ``parent``, met on checked ``path``, is not followed.

    A loop of symlinks is no change: the check left it unresolved (a
    non-strict ``realpath`` returns a looping link as it is), and it reads as
    envd's ``open`` reports it, ELOOP ("too many levels of symbolic links").
    Any other symlink appeared since the check.
    """
    try:
        os.stat(name, dir_fd=parent)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return OSError(errno.ELOOP, os.strerror(errno.ELOOP))
    return PathEscapeError(path, CHANGED)


def _is_link(parent: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    except OSError:
        return False


def open_entry(ws: SandboxWorkspace, target: Path, path: str, flags: int) -> int:
    """Open ``target`` (resolved, inside ``ws``) with ``flags``, its last component not followed.

    The parent is reached as :func:`open_dir` reaches it; a symlink at the
    last component (one that appeared since the check) raises
    :class:`PathEscapeError`, a loop of symlinks an ``OSError`` (ELOOP). The
    caller closes the descriptor.
    """
    if target == ws.root:
        return os.open(ws.root, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
    parent = open_dir(ws, target.parent, path)
    try:
        return os.open(target.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except OSError as exc:
        if _is_link(parent, target.name):
            raise _refusal(parent, target.name, path) from exc
        raise
    finally:
        os.close(parent)


@contextlib.contextmanager
def pinned(ws: SandboxWorkspace, target: Path, path: str) -> Iterator[Path]:
    """A host path naming ``target`` through its parent's open descriptor (not followed at the end).

    ``/proc/self/fd/<parent>/<name>``: for the calls that take no ``dir_fd``
    (xattrs, :func:`~pytest_kruise_agents.e2b.envd.entries.entry_info`), which
    then cannot be sent elsewhere by a directory swapped for a symlink. The
    workspace root itself is named directly (its parent is the server's).
    """
    if target == ws.root:
        yield target
        return
    parent = open_dir(ws, target.parent, path)
    try:
        yield at(parent, target.name)
    finally:
        os.close(parent)


def at(dir_fd: int, name: str) -> Path:
    """``/proc/self/fd/<dir_fd>/<name>``: entry ``name`` of the directory open as ``dir_fd``."""
    return Path(f"/proc/self/fd/{dir_fd}") / name
