"""Who runs the embedded server, and how the bot acts as them: the bot's own user; or, when the bot runs as root,
the unprivileged owner of the data folder (never root, never a user made for it, never a folder's mode changed)."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path


class EmbeddedDatabaseError(RuntimeError):
    """The embedded database could not start; the message says why in one sentence."""


class Refused(EmbeddedDatabaseError):
    """The embedded database won't start where it was asked to; the message says what to do instead."""


@dataclass(frozen=True)
class Account:
    uid: int
    gid: int
    name: str

    @property
    def is_other(self) -> bool:
        """The bot runs as root and the server as this user."""
        return self.uid != os.geteuid()

    def give(self, path: Path) -> None:
        """A file or folder the bot made for the server becomes the server's."""
        if self.is_other:
            os.chown(path, self.uid, self.gid, follow_symlinks=False)

    def run(self, command: list[str], *, timeout: float, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """`command` as this user (with its own group only), its output kept; raises CalledProcessError."""
        if not self.is_other:
            return subprocess.run(
                command, input=stdin, capture_output=True, text=True, timeout=timeout, check=True, cwd="/"
            )
        return subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
            cwd="/",
            user=self.uid,
            group=self.gid,
            extra_groups=[],
        )


def server_account(data_dir: Path) -> Account:
    """Who runs the server of `data_dir`: the bot's user; as root, the owner of the data folder (or of the nearest
    folder it will be made in). Raises Refused if no one may."""
    if os.geteuid() != 0:
        me = current_account()
        if data_dir.exists() and (owner := data_dir.stat().st_uid) != me.uid:
            raise Refused(
                f"the embedded knowledge database in {data_dir} belongs to {user_name(owner)}: "
                f"run the bot as {user_name(owner)}, or give the folder to {me.name} (chown -R)"
            )
        return me
    folder = next(folder for folder in [data_dir, *data_dir.parents] if folder.exists())
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    owner = folder.stat().st_uid
    if owner == 0:
        raise Refused(
            f"the embedded knowledge database won't run as root and {folder} is root's: run the bot as an ordinary "
            f"user, give KNOWLEDGE_DATA_DIR ({folder}) to one (chown -R), or set KNOWLEDGE_DATABASE_URL"
        )
    try:
        entry = pwd.getpwuid(owner)
    except KeyError:  # a uid with no name (a container's volume): its folder's group
        return Account(owner, folder.stat().st_gid, str(owner))
    return Account(entry.pw_uid, entry.pw_gid, entry.pw_name)


def make_folders(account: Account, folder: Path) -> None:
    """`folder` and its missing parents made, as the account's (root makes them for the server's user)."""
    missing = [parent for parent in [folder, *folder.parents] if not parent.exists()]
    for parent in reversed(missing):
        parent.mkdir(exist_ok=True)
        account.give(parent)


def current_account() -> Account:
    uid = os.geteuid()
    return Account(uid, os.getegid(), user_name(uid))


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def ensure_reachable(account: Account, path: Path, what: str) -> None:
    """Raises EmbeddedDatabaseError naming the first folder on the way to `path` that `account` can't enter."""
    if not account.is_other:
        return
    for folder in [*reversed(path.parents), path]:
        if not folder.exists():
            return
        if not may_enter(account, folder.stat()):
            raise Refused(
                f"the embedded knowledge database runs as {account.name} (the owner of its folder), who can't "
                f"reach {what} {path}: {folder} is closed to that user; choose a KNOWLEDGE_DATA_DIR it can reach, "
                "run the bot as an ordinary user, or set KNOWLEDGE_DATABASE_URL"
            )


def may_enter(account: Account, status: os.stat_result) -> bool:
    if status.st_uid == account.uid:
        return bool(status.st_mode & stat.S_IXUSR)
    if status.st_gid == account.gid:
        return bool(status.st_mode & stat.S_IXGRP)
    return bool(status.st_mode & stat.S_IXOTH)


def make_private_folder(account: Account, folder: Path) -> None:
    """`folder` made, or found, as the account's alone (0700, its owner, not a link); raises EmbeddedDatabaseError
    for one that is someone else's or open to others."""
    try:
        folder.mkdir(mode=0o700)
        account.give(folder)
        folder.chmod(0o700)  # whatever the umask
    except FileExistsError:
        pass
    status = folder.lstat()
    if not stat.S_ISDIR(status.st_mode) or status.st_uid != account.uid or stat.S_IMODE(status.st_mode) != 0o700:
        raise Refused(
            f"{folder} is not a private folder of {account.name} ({stat.filemode(status.st_mode)}, owner "
            f"{user_name(status.st_uid)}): the embedded knowledge database won't put its socket there; remove it, "
            "or choose a shorter KNOWLEDGE_DATA_DIR"
        )
