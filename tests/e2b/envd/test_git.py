"""Specification of the SDK's (deprecated) ``sbx.git`` module against the fake envd.

The module is no RPC of its own: it builds ``git`` command lines and runs them
through ``sbx.commands.run``, so it works here as far as commands do. Commands
run on the host with their ``cwd`` and ``HOME`` in the sandbox's workspace, so
a repository named by a path relative to the home directory (or a ``cwd=``)
is the sandbox's, the one ``sbx.files`` reads and writes. An absolute path in
the command text (``git -C /home/user/repo``) is a host path (docs/server.md,
*Commands and absolute paths*), which is why these tests name repositories
relatively. The machine's ``git`` does the work.
"""

from __future__ import annotations

import shutil

import pytest
from e2b import GitBranches

from tests.e2b.envd.conftest import Envd

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def test_git_init_configure_add_commit_status_and_branches_work_end_to_end(envd: Envd) -> None:
    """A repository made, filled through ``sbx.files`` and committed reads back as committed."""
    sbx = envd.sandbox()
    git = sbx.git

    git.init("repo", initial_branch="main")
    git.configure_user("Ann Example", "ann@example.com", scope="local", path="repo")
    assert git.get_config("user.name", scope="local", path="repo") == "Ann Example"

    sbx.files.write("/home/user/repo/notes.txt", "first\n")
    untracked = git.status("repo")
    assert [(f.name, f.status) for f in untracked.file_status] == [("notes.txt", "untracked")]

    git.add("repo", all=True)
    assert [(f.name, f.status, f.staged) for f in git.status("repo").file_status] == [
        ("notes.txt", "added", True)
    ]

    git.commit("repo", "Add notes")
    committed = git.status("repo")
    assert (committed.current_branch, committed.file_status) == ("main", [])
    log = sbx.commands.run("git log --format='%an <%ae> %s'", cwd="/home/user/repo").stdout
    assert log == "Ann Example <ann@example.com> Add notes\n"

    git.create_branch("repo", "feature")
    assert git.branches("repo") == GitBranches(
        branches=["feature", "main"], current_branch="feature"
    )
    git.checkout_branch("repo", "main")
    assert git.branches("repo").current_branch == "main"


def test_git_restores_and_resets_files_of_the_sandbox(envd: Envd) -> None:
    """``restore`` and ``reset`` act on the files ``sbx.files`` sees, named by a ``cwd=``."""
    sbx = envd.sandbox()
    git = sbx.git
    sbx.files.make_dir("/home/user/project")
    git.init(".", initial_branch="main", cwd="/home/user/project")
    git.configure_user("Ann Example", "ann@example.com")  # global: ~/.gitconfig in the sandbox
    sbx.files.write("/home/user/project/a.txt", "committed\n")
    git.add(".", all=True, cwd="/home/user/project")
    git.commit(".", "first", cwd="/home/user/project")

    sbx.files.write("/home/user/project/a.txt", "changed\n")
    git.restore(".", paths=["a.txt"], cwd="/home/user/project")
    assert sbx.files.read("/home/user/project/a.txt") == "committed\n"

    sbx.files.write("/home/user/project/a.txt", "changed again\n")
    git.add(".", all=True, cwd="/home/user/project")
    git.reset(".", mode="hard", cwd="/home/user/project")
    assert sbx.files.read("/home/user/project/a.txt") == "committed\n"
    assert sbx.files.read("/home/user/.gitconfig").count("ann@example.com") == 1
