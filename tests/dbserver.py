"""Real database servers for the source tests: PostgreSQL and MariaDB started in a temporary folder on
a free loopback port, stopped (and their folder removed) when the tests end.

Both servers refuse to run as root, so as root they run as their packages' own OS users
(``postgres``, ``mysql``) in a folder that user owns. A missing server skips the tests with a
message; in CI (the ``CI`` environment variable is set) a missing server fails them instead.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "cockpit"
PASSWORD = "s3cret-Pa55word"  # tests assert this never shows up in status, logs or errors
DATABASE = "erp"


def unavailable(reason: str, install: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run the database source tests (make test installs {install} as root)")
    pytest.skip(f"{reason}: database source tests skipped (install the Debian package {install})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _folder(owner: str | None) -> Path:
    """A temporary folder the server's OS user can write (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix=f"cockpit-{owner or 'db'}-"))
    if owner:
        os.chmod(path, 0o755)
        pw = pwd.getpwnam(owner)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


def _as(owner: str | None, cmd: list[str]) -> list[str]:
    return ["runuser", "-u", owner, "--", *cmd] if owner else cmd


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr[-2000:] or done.stdout[-2000:]}")


def _os_user(name: str) -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(name)
    except KeyError:
        pytest.fail(f"running as root but there is no '{name}' OS user to run the server as")
    return name


@dataclass
class Server:
    kind: str  # postgres | mysql
    port: int
    folder: Path

    def url(self, user: str = USER, password: str = PASSWORD, database: str = DATABASE) -> str:
        scheme = "postgresql" if self.kind == "postgres" else "mysql"
        return f"{scheme}://{user}:{password}@127.0.0.1:{self.port}/{database}"


# -- PostgreSQL -----------------------------------------------------------------------------------


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@contextlib.contextmanager
def postgres() -> Iterator[Server]:
    bindir = postgres_bin()
    if bindir is None:
        unavailable("PostgreSQL (initdb, pg_ctl) not found", "postgresql")
        raise AssertionError  # unreachable: skip/fail raise
    owner = _os_user("postgres")
    folder = _folder(owner)
    data, port = folder / "data", free_port()
    pwfile = folder / "pw"
    pwfile.write_text(PASSWORD)
    if owner:
        shutil.chown(pwfile, owner)
    try:
        _run(
            _as(owner, [str(bindir / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}",
                        "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"]),
            "initdb",
        )
        opts = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40"
        _run(_as(owner, [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-o", opts,
                         "start"]), "pg_ctl start")
        _run(_as(owner, [str(bindir / "psql"), "-h", str(folder), "-p", str(port), "-U", USER, "-d", "postgres",
                         "-c", f"CREATE DATABASE {DATABASE}"]), "createdb")
        yield Server("postgres", port, folder)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(_as(owner, [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                           capture_output=True, timeout=60, check=False)
        _remove(folder)


def _remove(folder: Path) -> None:
    for _ in range(20):  # a server's last files can appear while the tree is being removed
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            return
        time.sleep(0.25)


# -- MariaDB / MySQL ------------------------------------------------------------------------------


def mariadb_bin() -> tuple[Path, Path] | None:
    server = shutil.which("mariadbd") or shutil.which("mysqld") or next(
        (p for p in ("/usr/sbin/mariadbd", "/usr/sbin/mysqld") if Path(p).exists()), None
    )
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    return (Path(server), Path(install)) if server and install else None


@contextlib.contextmanager
def mariadb() -> Iterator[Server]:
    found = mariadb_bin()
    if found is None:
        unavailable("MariaDB (mariadbd, mariadb-install-db) not found", "mariadb-server")
        raise AssertionError
    server, install = found
    owner = _os_user("mysql")
    folder = _folder(owner)
    data, sock, port = folder / "data", folder / "mysqld.sock", free_port()
    user_opt = [f"--user={owner}"] if owner else []
    _run([str(install), "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=normal",
          "--skip-test-db", *user_opt], "mariadb-install-db")
    log = open(folder / "log", "wb")  # noqa: SIM115 - open as long as the server runs
    proc = subprocess.Popen(
        [str(server), "--no-defaults", f"--datadir={data}", f"--port={port}", "--bind-address=127.0.0.1",
         f"--socket={sock}", f"--pid-file={folder / 'mysqld.pid'}", "--skip-name-resolve",
         "--innodb-flush-log-at-trx-commit=0", "--skip-log-bin", "--character-set-server=utf8mb4",
         "--collation-server=utf8mb4_unicode_ci", *user_opt],
        stdout=subprocess.DEVNULL, stderr=log,
    )
    try:
        import pymysql

        deadline = time.monotonic() + 60
        while True:
            try:
                con = pymysql.connect(unix_socket=str(sock), user="root")
                break
            except pymysql.err.OperationalError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mariadbd did not start: {(folder / 'log').read_text()[-2000:]}") from None
                time.sleep(0.2)
        with con.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DATABASE}")
            cur.execute(f"CREATE USER '{USER}'@'%%' IDENTIFIED BY %s", (PASSWORD,))
            cur.execute(f"GRANT ALL ON *.* TO '{USER}'@'%'")
        con.close()
        yield Server("mysql", port, folder)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        _remove(folder)
