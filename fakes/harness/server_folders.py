"""Folders for an embedded knowledge server's data (a KNOWLEDGE_DATA_DIR) in tests and benchmarks. They run as
root (CI does), and as root the server runs as its folder's owner and refuses a folder of root's: so the folder is
given to the unprivileged `nobody` (nothing else on the host changes). Under /tmp, not pytest's tmp_path, whose
parent only root may enter (and which pytest prunes while another run's server may still use it)."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SERVER_USER = "nobody"


def server_folder(prefix: str = "knowledge-test-") -> Path:
    """A new folder under /tmp, the server user's (when root)."""
    return given_to_server_user(Path(tempfile.mkdtemp(prefix=prefix)))


def given_to_server_user(folder: Path | str) -> Path:
    folder = Path(folder)
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    return folder


def remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def embedded_database_url(prefix: str = "knowledge-test-") -> Iterator[str]:
    """An embedded knowledge server of its own, in a new server folder: its URL while it runs; stopped and its
    folder removed after."""
    from bot.knowledge.embedded import start_embedded, stop_embedded

    folder = server_folder(prefix)
    try:
        yield start_embedded(folder / "pg").url
    finally:
        stop_embedded(folder / "pg")
        remove(folder)
