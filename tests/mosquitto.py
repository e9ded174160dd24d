"""A real mosquitto broker on a free 127.0.0.1 port, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.tls import TlsFiles


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _mosquitto() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError("mosquitto is not installed")


@dataclass
class Broker:
    """One mosquitto process; stop() and start() keep the same port and config."""

    workdir: Path
    port: int = field(default_factory=free_port)
    username: str | None = None
    password: str | None = None
    extra_config: str = ""
    host: str = "127.0.0.1"
    users: dict[str, str] = field(default_factory=dict)
    acl_file: Path | None = None
    tls: TlsFiles | None = None
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} {self.host}",
            "persistence false",
            # mosquitto started as root would otherwise drop to a user that cannot read our files.
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
            f"log_dest file {self.workdir / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca_cert}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
            ]
        users = dict(self.users)
        if self.username is not None:
            users[self.username] = self.password or ""
        if users:
            passwd = self.workdir / "passwd"
            passwd.write_text("")
            passwd.chmod(0o600)
            for user, password in users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(passwd), user, password],
                    check=True,
                    capture_output=True,
                )
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
        self.config_path.write_text("\n".join(lines) + "\n" + self.extra_config)

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and wait until it accepts connections."""
        if self._proc is not None:
            return
        if not self.config_path.exists():
            self.write_config()
        self._proc = subprocess.Popen(
            [_mosquitto(), "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                self._proc = None
                raise RuntimeError(f"mosquitto exited at start: {err}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.host}:{self.port}")

    def stop(self) -> None:
        """Stop the broker; a killed broker drops every client at once."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        if self._proc.stderr:
            self._proc.stderr.close()
        self._proc = None

    def kill(self) -> None:
        """Kill the broker without a clean shutdown."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(5)
            if self._proc.stderr:
                self._proc.stderr.close()
            self._proc = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text() if path.exists() else ""


@contextlib.contextmanager
def running_broker(workdir: Path, **kwargs: object) -> Iterator[Broker]:
    """Run a broker for the duration of a with-block."""
    broker = Broker(workdir, **kwargs)  # type: ignore[arg-type]
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
