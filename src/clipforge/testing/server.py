"""A ``clipforge serve`` subprocess on a free loopback port, and a small stdlib HTTP client, for tests and
benchmarks. Every process started here is stopped (SIGTERM, then SIGKILL) when the context exits."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


def request(
    method: str,
    url: str,
    *,
    json_body=None,
    data: bytes | None = None,
    headers: dict | None = None,
    timeout: float = 30.0,
) -> Reply:
    """One HTTP request; 4xx/5xx come back as a ``Reply`` too (never raised)."""
    headers = dict(headers or {})
    if json_body is not None:
        data, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Reply(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())


def multipart(fields: list[tuple[str, object]]) -> tuple[bytes, str]:
    """``[(name, str | (filename, bytes))]`` -> (body, content type)."""
    boundary = "clipforge" + os.urandom(8).hex()
    out = b""
    for name, value in fields:
        if isinstance(value, tuple):
            filename, content = value
            out += (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                    "Content-Type: application/octet-stream\r\n\r\n"
                ).encode()
                + content
                + b"\r\n"
            )
        else:
            out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@dataclass
class ServerProcess:
    args: list[str]
    port: int = field(default_factory=free_port)
    env: dict | None = None
    proc: subprocess.Popen | None = None
    log_path: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout: float = 120.0, wait_ready: bool = True) -> ServerProcess:
        cmd = [
            sys.executable,
            "-m",
            "clipforge.cli.main",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            *self.args,
        ]
        env = {**os.environ, **(self.env or {})}
        if self.log_path:  # the child keeps its own copy of the file; the parent's closes here
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        else:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env)
        self.wait(ready_timeout, "/readyz" if wait_ready else "/healthz")
        return self

    def wait(self, timeout: float, path: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with code {self.proc.returncode}: {' '.join(self.args)}")
            with contextlib.suppress(OSError):
                if request("GET", self.url + path, timeout=2).status == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"server not answering 200 on {path} after {timeout:.0f} s")

    def terminate(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        self.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()
