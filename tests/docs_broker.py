"""The broker of docs/mosquitto/ as its README sets it up: the CA and certificate its openssl
commands make, and mosquitto run with the shipped mosquitto.conf and sem.acl (paths and port moved
to a test's own)."""

from __future__ import annotations

import os
import pwd
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.mosquitto import Broker
from tests.tls import TlsFiles

REPO = Path(__file__).parents[1]
DOCS = REPO / "docs" / "mosquitto"


def readme_block(title: str) -> str:
    """The shell block of docs/mosquitto/README.md's section `title`."""
    text = (DOCS / "README.md").read_text()
    section = text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) == 1
    return blocks[0]


def make_certificates(directory: Path) -> TlsFiles:
    """Run the README's certificate commands in directory, for a broker at 127.0.0.1 (the one
    line the README says to edit)."""
    block = readme_block("2. A private certificate authority and the broker's certificate")
    block, edits = re.subn(r"^BROKER=\S+", "BROKER=127.0.0.1", block, flags=re.M)
    assert edits == 1
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    certs = directory / "certs"
    return TlsFiles(certs / "ca.crt", certs / "server.crt", certs / "server.key")


def docs_broker(workdir: Path, tls: TlsFiles, users: dict[str, str]) -> Broker:
    """A broker (not started) configured by the shipped mosquitto.conf and sem.acl."""
    workdir.mkdir(parents=True, exist_ok=True)
    passwd = workdir / "sem.passwd"
    for user, password in users.items():
        create = ["-c"] if not passwd.exists() else []
        subprocess.run(
            ["mosquitto_passwd", *create, "-b", str(passwd), user, password],
            check=True,
            capture_output=True,
        )
    broker = Broker(workdir)
    shipped = (DOCS / "mosquitto.conf").read_text()
    for old, new in (
        ("listener 8883", f"listener {broker.port} {broker.host}"),
        ("/etc/mosquitto/sem.passwd", str(passwd)),
        ("/etc/mosquitto/sem.acl", str(DOCS / "sem.acl")),
        ("/etc/mosquitto/certs/ca.crt", str(tls.ca_cert)),
        ("/etc/mosquitto/certs/server.crt", str(tls.server_cert)),
        ("/etc/mosquitto/certs/server.key", str(tls.server_key)),
    ):
        assert old in shipped
        shipped = shipped.replace(old, new)
    own = [
        "persistence false",
        f"user {pwd.getpwuid(os.geteuid()).pw_name}",
        f"log_dest file {workdir / 'mosquitto.log'}",
    ]
    broker.config_path.write_text(shipped + "\n" + "\n".join(own) + "\n")
    return broker


@contextmanager
def running_docs_broker(workdir: Path, tls: TlsFiles, users: dict[str, str]) -> Iterator[Broker]:
    """`docs_broker`, started for the block and stopped after it."""
    broker = docs_broker(workdir, tls, users)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
