"""Three nats-server processes clustered on 127.0.0.1, JetStream and the MQTT listener on.

Debian's `nats-server` does the brokering, the replication (R3) and the consensus; this module
only writes each server's configuration and starts, kills and restarts the processes.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

# Largest message a server accepts: a partition's checkpoint is one key-value entry.
MAX_PAYLOAD = 8 * 1024 * 1024


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, and that this process has
    not handed out before (a cluster takes a dozen before any server binds one)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def nats_server_binary() -> str:
    """The nats-server executable (Debian installs it in /usr/sbin)."""
    for candidate in (shutil.which("nats-server"), "/usr/sbin/nats-server"):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError("nats-server is not installed")


@dataclass
class NatsServer:
    """One server of the cluster; stop() and start() keep its ports and its JetStream store."""

    name: str
    workdir: Path
    cluster_name: str
    client_port: int = field(default_factory=free_port)
    route_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    routes: list[int] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The NATS client URL."""
        return f"nats://127.0.0.1:{self.client_port}"

    @property
    def config_path(self) -> Path:
        """The server's configuration file."""
        return self.workdir / f"{self.name}.conf"

    @property
    def log_path(self) -> Path:
        """The server's log file."""
        return self.workdir / f"{self.name}.log"

    def write_config(self) -> None:
        """Write the configuration: client, route, MQTT and monitoring ports on 127.0.0.1."""
        store = self.workdir / self.name
        store.mkdir(parents=True, exist_ok=True)
        routes = ", ".join(f"nats-route://127.0.0.1:{port}" for port in self.routes)
        self.config_path.write_text(
            f"server_name: {self.name}\n"
            f"listen: 127.0.0.1:{self.client_port}\n"
            f"http: 127.0.0.1:{self.http_port}\n"
            f"max_payload: {MAX_PAYLOAD}\n"
            f'log_file: "{self.log_path}"\n'
            "jetstream {\n"
            f'  store_dir: "{store}"\n'
            "  max_memory_store: 256MB\n"
            "  max_file_store: 8GB\n"
            "}\n"
            "cluster {\n"
            f"  name: {self.cluster_name}\n"
            f"  listen: 127.0.0.1:{self.route_port}\n"
            f"  routes: [{routes}]\n"
            "}\n"
            "mqtt {\n"
            f"  listen: 127.0.0.1:{self.mqtt_port}\n"
            # QoS 1 messages are stored in $MQTT_msgs before the PUBACK; with three replicas
            # that store survives the loss of any one server (the readings stream sources it).
            "  stream_replicas: 3\n"
            "}\n"
        )

    def start(self) -> None:
        """Start the process (its ports and store are kept from an earlier run)."""
        if self.proc is not None and self.proc.poll() is None:
            return
        self.write_config()
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        """Kill the process outright (SIGKILL): a machine lost, nothing flushed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        """Stop the process cleanly."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    @property
    def running(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        """True when the server answers its health check with JetStream up."""
        url = f"http://127.0.0.1:{self.http_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def mqtt_answers(self, timeout: float) -> bool:
        """True when the MQTT listener accepts a clean-session CONNECT within `timeout`.

        A server's first MQTT client makes it set up its MQTT state in JetStream (replicated
        streams, the retained messages loaded): a dozen requests one after another, longer
        under load, so it is done here once rather than inside a node's or Home Assistant's
        connect timeout.
        """
        client_id = f"sem-ready-{self.name}".encode()
        body = b"\x00\x04MQTT\x04\x02\x00\x1e" + len(client_id).to_bytes(2, "big") + client_id
        try:
            with socket.create_connection(("127.0.0.1", self.mqtt_port), timeout=timeout) as sock:
                sock.settimeout(timeout)
                sock.sendall(bytes([0x10, len(body)]) + body)
                connack = sock.recv(4)
                sock.sendall(b"\xe0\x00")  # DISCONNECT: no will, nothing kept
        except OSError:
            return False
        return connack[:2] == b"\x20\x02" and connack[3:4] == b"\x00"

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log, for error messages."""
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""


@dataclass
class Cluster:
    """N servers (3 by default) routed to each other."""

    workdir: Path
    size: int = 3
    name: str = "sem"
    servers: list[NatsServer] = field(init=False)

    def __post_init__(self) -> None:
        self.workdir = self.workdir.resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.servers = [
            NatsServer(f"n{index + 1}", self.workdir, self.name) for index in range(self.size)
        ]
        for server in self.servers:
            server.routes = [other.route_port for other in self.servers if other is not server]

    @property
    def urls(self) -> list[str]:
        """Every server's client URL."""
        return [server.url for server in self.servers]

    @property
    def running_urls(self) -> list[str]:
        """The client URLs of the servers running now (a client's first connect tries only
        the first of its list)."""
        return [server.url for server in self.servers if server.running]

    @property
    def mqtt_ports(self) -> list[int]:
        """Every server's MQTT listener port."""
        return [server.mqtt_port for server in self.servers]

    def start(self, timeout: float = 30.0) -> None:
        """Start every server and wait until all report healthy."""
        for server in self.servers:
            server.start()
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until every running server reports healthy (JetStream meta leader elected)."""
        deadline = time.monotonic() + timeout
        while True:
            waiting = [s for s in self.servers if s.running and not s.healthy()]
            if not waiting:
                return
            dead = [s for s in self.servers if s.proc is not None and s.proc.poll() is not None]
            if dead or time.monotonic() > deadline:
                server = (dead or waiting)[0]
                raise RuntimeError(
                    f"nats-server {server.name} did not become healthy:\n{server.log_tail()}"
                )
            time.sleep(0.2)

    def server(self, name: str) -> NatsServer:
        """The server called `name` (n1, n2, n3), e.g. the one a stream's info names leader."""
        return next(server for server in self.servers if server.name == name)

    def wait_mqtt(self, timeout: float = 60.0) -> None:
        """Wait until every running server's MQTT listener answers a CONNECT."""
        deadline = time.monotonic() + timeout
        for server in self.servers:
            while server.running and not server.mqtt_answers(max(1.0, deadline - time.monotonic())):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"nats-server {server.name}: MQTT listener did not answer:\n"
                        f"{server.log_tail()}"
                    )
                time.sleep(0.2)

    def stop(self) -> None:
        """Stop every server."""
        for server in self.servers:
            server.stop()
