"""nx-27017 served on a Unix domain socket instead of a TCP port.

nx-27017 has no authentication and listens only on TCP (its ``run_server`` calls
``asyncio.start_server(host, port)``), where any local user, and any job, can connect and write
jobs that the engine runs as the server's user. A Unix socket in the data folder (0700) can only
be reached by the server's own user (and root), the kernel checking the folder's permissions at
``connect()``.

store/embedded.py runs this file as the store child's entry point (``runpy``, so the project's
packages are not imported there): ``main()`` takes ``--unix-socket PATH`` off the command line,
puts its own ``serve`` in place of nx's ``run_server``, and runs nx's own ``main`` with the rest
of the arguments, so nx parses them, opens its databases and writes its pid file as always; nx's
``--host``/``--port`` are then unused. Only nx's ``handle_client`` (one connection) is reused: it
reads and writes through asyncio streams and does not care about the socket's family. Written
for nx-27017 0.8.1, pinned in requirements.txt.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import stat
import sys

# The socket file's permissions: the server's user only (connect() needs write permission).
SOCKET_UMASK = 0o177
BACKLOG = 128  # nx's own listen backlog (nx_27017.wire_protocol.SOCKET_BACKLOG)


def bind(path: str) -> socket.socket:
    """A listening Unix socket at ``path``, mode 0600.

    A socket file left by a killed store (nothing accepts on it) is replaced; a path where a
    process still accepts connections raises EADDRINUSE rather than taking it over, as a TCP port
    in use would (asyncio's own ``start_unix_server(path=...)`` would silently replace it)."""
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(path)
                except ConnectionRefusedError:
                    os.unlink(path)  # stale: its server is gone
                else:
                    raise OSError(errno.EADDRINUSE, f"another process serves {path}")
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(SOCKET_UMASK)
    try:
        sock.bind(path)
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    finally:
        os.umask(old)
    return sock


async def serve(path: str, handler) -> None:
    """nx's ``run_server`` on the Unix socket ``path``: every connection goes to nx's own
    ``handle_client``."""
    from nx_27017.server import handle_client  # type: ignore[import-untyped]

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await handle_client(reader, writer, handler)

    server = await asyncio.start_unix_server(client, sock=bind(path))
    async with server:
        await server.serve_forever()


def take_option(argv: list[str], name: str) -> str:
    """Remove ``name VALUE`` from ``argv``; the value."""
    at = argv.index(name)
    value = argv[at + 1]
    del argv[at:at + 2]
    return value


def main() -> int | None:
    import nx_27017.server  # type: ignore[import-untyped]
    from nx_27017.nx_27017 import main as nx_main  # type: ignore[import-untyped]

    path = take_option(sys.argv, "--unix-socket")
    nx_27017.server.run_server = lambda _host, _port, handler: serve(path, handler)
    return nx_main()
