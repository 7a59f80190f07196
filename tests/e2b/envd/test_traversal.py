"""Specification: no envd path, RPC or ``/files``, can reach outside the sandbox's workspace.

``..`` applies inside the sandbox (``../../etc/passwd`` from ``/home/user`` is
the sandbox's own ``/etc/passwd``) but may not climb above ``/``; symlinks
whose target lies outside the workspace, relative or absolute, are refused.
Every refusal answers ``invalid_argument`` (HTTP 400) and touches nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from e2b import FileNotFoundException, FileType, InvalidArgumentException, Sandbox

from tests.e2b.envd.conftest import Envd

CLIMBING = ["../../../etc/passwd", "/../etc/passwd", "/home/user/../../../etc"]


@pytest.fixture
def links(envd: Envd, outside: Path) -> Sandbox:
    """A sandbox whose home holds symlinks leading out: absolute, relative, to /etc."""
    home = envd.workspace().resolve("/home/user")
    (home / "abs").symlink_to(outside)
    (home / "rel").symlink_to("../../../../outside")
    (home / "etc").symlink_to("/etc")
    (home / "secret-link").symlink_to(outside / "secret.txt")
    assert (home / "rel" / "secret.txt").read_text() == "secret"  # the link really leads out
    return envd.sandbox()


def unchanged(outside: Path) -> bool:
    return (
        sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
        and (outside / "secret.txt").read_text() == "secret"
    )


@pytest.mark.parametrize("path", CLIMBING)
def test_climbing_above_the_root_is_refused_everywhere(envd: Envd, path: str) -> None:
    sbx = envd.sandbox()
    operations: list[Callable[[], object]] = [
        lambda: sbx.files.read(path),
        lambda: sbx.files.write(path, "x"),
        lambda: sbx.files.list(path),
        lambda: sbx.files.exists(path),
        lambda: sbx.files.get_info(path),
        lambda: sbx.files.make_dir(path),
        lambda: sbx.files.remove(path),
        lambda: sbx.files.rename("/home/user", path),
        lambda: sbx.files.watch_dir(path),
        lambda: sbx.commands.run("true", cwd=path),
    ]
    for operation in operations:
        with pytest.raises(InvalidArgumentException, match="climbs above the sandbox root"):
            operation()
    assert envd.workspace().home.is_dir()


def test_dot_dot_inside_the_sandbox_stays_inside(envd: Envd) -> None:
    sbx = envd.sandbox()
    with pytest.raises(FileNotFoundException):
        sbx.files.read("../../etc/passwd")  # the sandbox's own /etc/passwd: there is none
    sbx.files.write("../../etc/hosts", "sandbox hosts")
    assert (envd.workspace().root / "etc" / "hosts").read_text() == "sandbox hosts"
    assert "sandbox hosts" not in Path("/etc/hosts").read_text()


@pytest.mark.parametrize(
    "path",
    [
        "abs/secret.txt",
        "rel/secret.txt",
        "/home/user/abs/secret.txt",
        "etc/passwd",
    ],
)
def test_reading_through_a_link_leading_out_is_refused(
    links: Sandbox, outside: Path, path: str
) -> None:
    with pytest.raises(InvalidArgumentException, match="outside the sandbox"):
        links.files.read(path)
    with pytest.raises(InvalidArgumentException, match="outside the sandbox"):
        links.files.get_info(path)
    with pytest.raises(InvalidArgumentException, match="outside the sandbox"):
        links.files.read("secret-link")


@pytest.mark.parametrize("link", ["abs", "rel"])
def test_nothing_outside_changes_through_a_link(links: Sandbox, outside: Path, link: str) -> None:
    operations: list[Callable[[], object]] = [
        lambda: links.files.write(f"{link}/new.txt", "x"),
        lambda: links.files.write(f"{link}/secret.txt", "overwritten"),
        lambda: links.files.make_dir(f"{link}/newdir"),
        lambda: links.files.remove(f"{link}/secret.txt"),
        lambda: links.files.rename(f"{link}/secret.txt", "stolen.txt"),
        lambda: links.files.rename("/home/user/rel", f"{link}/moved"),
        lambda: links.files.list(link),
        lambda: links.files.watch_dir(link),
        lambda: links.commands.run("true", cwd=link),
    ]
    for operation in operations:
        with pytest.raises(InvalidArgumentException, match="outside the sandbox"):
            operation()
    assert unchanged(outside)


def test_writing_through_a_file_link_leading_out_is_refused(links: Sandbox, outside: Path) -> None:
    with pytest.raises(InvalidArgumentException, match="outside the sandbox"):
        links.files.write("secret-link", "overwritten")
    assert unchanged(outside)


def test_a_link_leading_out_can_be_listed_stat_ed_and_removed_but_not_followed(
    links: Sandbox, outside: Path
) -> None:
    listed = {e.name: e for e in links.files.list("/home/user")}
    assert (listed["abs"].type, listed["abs"].symlink_target) == (FileType.SYMLINK, str(outside))
    info = links.files.get_info("secret-link")  # the link itself, not what it points at
    assert (info.type, info.symlink_target) == (FileType.SYMLINK, str(outside / "secret.txt"))
    assert info.size != len("secret")
    links.files.remove("abs")
    assert not links.files.exists("abs")
    assert unchanged(outside)


def test_raw_files_requests_are_refused_with_a_400_json(envd: Envd, outside: Path) -> None:
    (envd.workspace().resolve("/home/user") / "abs").symlink_to(outside)
    with envd.http() as http:
        for path in ["../../../etc/passwd", "abs/secret.txt", "/../outside/secret.txt"]:
            got = http.get("/files", params={"path": path})
            assert got.status_code == 400
            assert got.json()["code"] == 400
            assert "secret" not in got.text.replace(path, "")
            put = http.post("/files", params={"path": path}, files={"file": ("x", b"pwned")})
            assert put.status_code == 400
        # Without a path query, each part's filename is the path: checked the same way.
        named = http.post("/files", files={"file": ("abs/evil.txt", b"pwned")})
        assert named.status_code == 400
    assert unchanged(outside)


def test_a_refused_part_aborts_the_whole_upload(envd: Envd, outside: Path) -> None:
    (envd.workspace().resolve("/home/user") / "abs").symlink_to(outside)
    with envd.http() as http:
        r = http.post(
            "/files", files=[("file", ("ok.txt", b"fine")), ("file", ("abs/evil.txt", b"x"))]
        )
    assert r.status_code == 400
    assert not (envd.workspace().home / "ok.txt").exists()
    assert unchanged(outside)
