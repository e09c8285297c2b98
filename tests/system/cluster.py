"""A real Redis Cluster of the tests' own: three masters, no replicas, nothing saved to disk.

Started once for the whole run (the `redis_cluster` fixture in tests/conftest.py) and removed
at its end, keys and all.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable

import pytest
import redis

START_SECONDS = 20.0


class OwnCluster:
    def __init__(self, free_port: Callable[[], int], masters: int = 3) -> None:
        ports: set[int] = set()
        while len(ports) < masters * 2:  # each node's client port and cluster bus port
            ports.add(free_port())
        chosen = sorted(ports)
        self.ports = chosen[:masters]
        self._bus_ports = chosen[masters:]
        self.dir = tempfile.mkdtemp(prefix="redis-cluster-test-")
        self._processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """Any one node: the client discovers the others."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> None:
        server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if server is None or cli is None:
            pytest.skip("redis-server and redis-cli are needed for a Redis Cluster")
        for port, bus_port in zip(self.ports, self._bus_ports, strict=False):
            self._processes.append(
                subprocess.Popen(
                    [
                        server,
                        "--port",
                        str(port),
                        "--cluster-port",
                        str(bus_port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        f"{self.dir}/nodes-{port}.conf",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        self.dir,
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + START_SECONDS
        self._wait(deadline, lambda node: bool(node.ping()))
        created = subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in self.ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            check=False,  # its output is shown when it fails, below
            timeout=START_SECONDS,
        )
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}{created.stderr}")
        self._wait(deadline, lambda node: node.cluster("info")["cluster_state"] == "ok")

    def node(self, port: int) -> redis.Redis:
        """A plain client of one node: it sees only the keys of the slots that node serves."""
        return redis.Redis(port=port, decode_responses=True, socket_connect_timeout=0.5)

    def keys_by_node(self, pattern: str) -> dict[int, set[str]]:
        found = {}
        for port in self.ports:
            with self.node(port) as node:
                found[port] = set(node.scan_iter(match=pattern, count=1000))
        return found

    def cleanup(self) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _wait(self, deadline: float, ready: Callable[[redis.Redis], bool]) -> None:
        for port in self.ports:
            with self.node(port) as node:
                while True:
                    try:
                        if ready(node):
                            break
                    except redis.ConnectionError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the Redis Cluster node on port {port} did not become ready")
                    time.sleep(0.05)
