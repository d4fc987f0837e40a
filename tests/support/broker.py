"""A private mosquitto broker on a free loopback port, started and stopped by the tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


class Mosquitto:
    """One mosquitto process; ``stop()`` and ``start()`` again on the same port."""

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "") -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.workdir = workdir
        self.extra_conf = extra_conf
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = workdir / f"mosquitto-{self.port}.conf"
        self.log = workdir / f"mosquitto-{self.port}.log"

    def write_conf(self) -> None:
        body = self.extra_conf or (
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
        )
        # as root, mosquitto would switch to its own user and lose access to tmp_path
        needs_user = os.geteuid() == 0 and "user " not in self.extra_conf
        user = "user root\n" if needs_user else ""
        self.conf.write_text(
            f"{user}persistence false\nlog_dest file {self.log}\nlog_type error\n"
            f"log_type warning\nlog_type notice\n{body}"
        )

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            pytest.fail("mosquitto is not installed (the CI script installs it)")
        self.write_conf()
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)])
        wait_port(self.host, self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


def write_passwords(path: Path, users: Mapping[str, str]) -> None:
    """A mosquitto password file with ``users`` (name: password), replacing ``path``."""
    for i, (user, password) in enumerate(users.items()):
        subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if i == 0 else []), str(path),
                        user, password], check=True, capture_output=True, timeout=30)


def auth_broker(workdir: Path, users: Mapping[str, str], acl: str | None = None) -> Mosquitto:
    """A started broker that lets in only ``users`` (name: password), under the ``acl``
    file's text when given; stop it after use."""
    pwfile = workdir / "passwd"
    write_passwords(pwfile, users)
    pwfile.chmod(0o600)
    m = Mosquitto(workdir)
    conf = f"listener {m.port} 127.0.0.1\nallow_anonymous false\npassword_file {pwfile}\n"
    if acl is not None:
        (workdir / "acl").write_text(acl)
        conf += f"acl_file {workdir / 'acl'}\n"
    m.extra_conf = conf
    m.start()
    return m


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh broker for one test."""
    m = Mosquitto(tmp_path)
    m.start()
    try:
        yield m
    finally:
        m.stop()
