"""The socket several uvicorn workers share must give accepted connections TCP_NODELAY."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from segue.api.server import TcpConfig, serve_config


def _nodelay_of_accepted(config: uvicorn.Config) -> int:
    """Serve one connection on ``config``'s shared socket, as a worker does; its option."""
    listening = config.bind_socket()
    seen: list[int] = []

    async def run() -> None:
        def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(accepted, sock=listening)
        port = listening.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        while not seen:
            await asyncio.sleep(0.01)
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(run())
    return seen[0]


def test_shared_worker_socket_gets_tcp_nodelay() -> None:
    def app() -> None: ...

    # what segue owns: the shared socket says TCP, so asyncio turns Nagle off on every
    # accepted connection (whatever the installed uvicorn does with its own socket)
    listening = TcpConfig(app, host="127.0.0.1", port=0).bind_socket()
    try:
        assert listening.proto == socket.IPPROTO_TCP
    finally:
        listening.close()
    assert _nodelay_of_accepted(TcpConfig(app, host="127.0.0.1", port=0)) != 0


def test_segue_serve_runs_on_uvloop_and_httptools() -> None:
    # uvicorn's "auto" would fall back to h11 and asyncio without a word when they are missing
    import importlib

    config = serve_config("127.0.0.1", 0, 2, "warning")
    assert (config.http, config.loop, config.workers, config.factory) == (
        "httptools",
        "uvloop",
        2,
        True,
    )
    assert isinstance(config, TcpConfig)
    for module in ("httptools", "uvloop"):  # installed, as pyproject requires
        importlib.import_module(module)
