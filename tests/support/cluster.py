"""Real clusters for tests: `covey server` nodes on one PostgreSQL database, one shared
data directory and NATS JetStream, optionally behind Debian's nginx running the shipped
`deploy/nginx/covey.conf`, and a private `nats-server` a test may restart.

NATS comes from COVEY_TEST_NATS_URL (default the machine's nats://127.0.0.1:4222); each
cluster gets its own `cluster_name`, so its subjects and stream never meet another's.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from covey.server.process import free_port
from tests.support.server import CoveyServer, postgres_database

NATS_URL = os.environ.get("COVEY_TEST_NATS_URL", "nats://127.0.0.1:4222")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
REPO = Path(__file__).resolve().parents[2]
NGINX_CONF = REPO / "deploy" / "nginx" / "covey.conf"

# Opaque envelopes (random bytes) and fast sends: the cluster tests measure delivery.
CLUSTER_ENV = {"COVEY_SAFETY_MODE": "e2ee-only", "COVEY_CONSOLE_ALLOW_HTTP": "true",
               "COVEY_RATE_SEND_BURST": "100000", "COVEY_RATE_REGISTER_BURST": "100000",
               "COVEY_RATE_LOGIN_BURST": "100000", "COVEY_ONE_TIME_KEYS_LOW": "0"}


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _port_open(port):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


class Cluster:
    """`n` nodes on one database and data directory; nodes[i] can be killed and
    restarted."""

    def __init__(self, root: Path, database_url: str, nats_url: str, n: int,
                 env: dict[str, str] | None = None) -> None:
        self.root = root
        self.database_url = database_url
        self.data_dir = root / "shared-data"
        self.name = "t" + secrets.token_hex(4)
        self.env = {**CLUSTER_ENV, "COVEY_NATS_URL": nats_url,
                    "COVEY_CLUSTER_NAME": self.name, **(env or {})}
        self.nodes = [CoveyServer(database_url, self.data_dir, env=self.env,
                                  log_path=root / f"node{i}.log") for i in range(n)]

    def start(self) -> Cluster:
        for node in self.nodes:
            node.start()
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def node_id(self, node: CoveyServer) -> str:
        return str(httpx.get(f"{node.url}/readyz", timeout=5).json()["node_id"])


@contextlib.contextmanager
def running_cluster(root: Path, n: int = 2, *, nats_url: str = NATS_URL,
                    env: dict[str, str] | None = None) -> Iterator[Cluster]:
    with postgres_database() as url:
        cluster = Cluster(root, url, nats_url, n, env)
        try:
            yield cluster.start()
        finally:
            cluster.stop()


class Nginx:
    """Debian's nginx running deploy/nginx/covey.conf on a free port in front of `nodes`,
    everything it writes in `root`."""

    def __init__(self, root: Path, nodes: list[CoveyServer]) -> None:
        if not Path(NGINX).exists():
            pytest.fail("nginx is needed (./scripts/test installs Debian's package)",
                        pytrace=False)
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        shipped = NGINX_CONF.read_text()
        servers = "".join(f"    server 127.0.0.1:{n.port} max_fails=1 fail_timeout=5s;\n"
                          for n in nodes)
        site, count = re.subn(r"(?m)^    server 127\.0\.0\.1:847\d[^\n]*\n", "", shipped)
        assert count == 2, "deploy/nginx/covey.conf no longer names two upstream nodes"
        site = site.replace("    least_conn;\n", "    least_conn;\n" + servers, 1)
        site, count = re.subn(r"listen 8470;", f"listen 127.0.0.1:{self.port};", site)
        assert count == 1
        root.mkdir(parents=True, exist_ok=True)
        (root / "covey.conf").write_text(site)
        temp = root / "temp"
        temp.mkdir(exist_ok=True)
        (root / "nginx.conf").write_text(f"""
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {root}/covey.conf;
}}
""")

    def start(self) -> Nginx:
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.root), "-c", str(self.root / "nginx.conf"),
             "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def error_log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.root / "error.log").read_text()[-3000:]
        return ""


class PrivateNats:
    """A `nats-server -js` of the test's own, on a free port, that it may restart."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateNats:
        self.root.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js",
             "-sd", str(self.root / "store")],
            stdout=subprocess.DEVNULL, stderr=(self.root / "nats.log").open("ab"))
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class TcpProxy:
    """A TCP forwarder to 127.0.0.1:`target` on a port of its own, run in a thread, that a
    test can `cut()` (every connection dropped, new ones refused) and `restore()`: the
    database "briefly unreachable" without touching the shared PostgreSQL."""

    def __init__(self, target: int) -> None:
        import asyncio
        import threading

        self.target = target
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._server: Any = None
        self._writers: set[Any] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def _call(self, coro: Any) -> Any:
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _pipe(self, reader: Any, writer: Any) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, RuntimeError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: Any, writer: Any) -> None:
        import asyncio

        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    async def _listen(self) -> None:
        import asyncio

        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port,
                                                  reuse_address=True)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            transport = writer.transport
            transport.abort()
        self._writers.clear()

    def start(self) -> TcpProxy:
        self._call(self._listen())
        return self

    def cut(self) -> None:
        self._call(self._cut())

    def restore(self) -> None:
        self._call(self._listen())

    def close(self) -> None:
        self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
