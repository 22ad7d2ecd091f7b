"""Running the service: the loopback-only rule, uvicorn's settings, and a server in a thread
(for the tests and the load benchmark, on an ephemeral port)."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import Any

import uvicorn

from hashing.errors import TriageError

# connections served at once (beyond: 503), so slow clients cannot take every socket
LIMIT_CONCURRENCY = 256
KEEP_ALIVE_SECONDS = 5


class BindRefusedError(TriageError):
    pass


def check_bind(host: str, public: bool) -> None:
    """Refuse a non-loopback address unless `public`: TLS belongs to a reverse proxy in front
    of the service, which reaches it on loopback."""
    if public:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise BindRefusedError(
            f"refusing to listen on {host}: not a loopback address. Put a TLS reverse proxy in"
            " front and keep the service on 127.0.0.1, or pass --public if you mean it"
        )


def config(app: Any, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False,
        limit_concurrency=LIMIT_CONCURRENCY, timeout_keep_alive=KEEP_ALIVE_SECONDS,
        server_header=False, date_header=False, lifespan="off",
    )


def serve(app: Any, host: str, port: int, public: bool) -> None:
    check_bind(host, public)
    server = uvicorn.Server(config(app, host, port))
    try:
        server.run()
    finally:
        app.state.close()


def loopback_socket() -> socket.socket:
    """A listening-to-be TCP socket on 127.0.0.1 and an ephemeral port. Made with an explicit
    IPPROTO_TCP: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on connections whose
    socket says it is TCP, and a socket made with protocol 0 would answer small responses one
    delayed ACK (~40 ms) late, as uvicorn's own host/port binding never does."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class ThreadedServer:
    """The real server on 127.0.0.1 and an ephemeral port, in a daemon thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        sock = loopback_socket()
        self.port = sock.getsockname()[1]
        self._sock = sock
        self.server = uvicorn.Server(config(app, "127.0.0.1", self.port))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                       daemon=True)

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the service did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self._sock.close()
        self.app.state.close()
