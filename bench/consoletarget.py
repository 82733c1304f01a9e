"""The consoles' target for the console bench: ``python -m bench.consoletarget``.

What a VM's VNC server is to a console, in one process of its own so that neither the proxy's
nor the client's CPU pays for it. Each connection opens with a header of 9 bytes, a mode
and a count (8 bytes, big-endian), because websockify's target is fixed on its command line
and every console must reach the same port:

- ``S``, sink: read ``count`` bytes, then send ``ACK`` (the client's upload has arrived);
- ``P``, push: send ``count`` bytes as fast as the connection takes them;
- ``E``, echo: send back what arrives, until the other side closes.

It prints its port on a line, then serves until SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

HEADER_BYTES = 9
ACK = b"!"
SINK, PUSH, ECHO = b"S", b"P", b"E"
CHUNK_BYTES = 256 * 1024


def header(mode: bytes, count: int = 0) -> bytes:
    return mode + count.to_bytes(8, "big")


async def serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        first = await reader.readexactly(HEADER_BYTES)
        mode, count = first[:1], int.from_bytes(first[1:], "big")
        if mode == SINK:
            while count > 0:
                data = await reader.read(min(count, CHUNK_BYTES))
                if not data:
                    return
                count -= len(data)
            writer.write(ACK)
        elif mode == PUSH:
            chunk = os.urandom(CHUNK_BYTES)
            while count > 0:
                writer.write(chunk[: min(count, CHUNK_BYTES)])
                count -= CHUNK_BYTES
                await writer.drain()
        elif mode == ECHO:
            while data := await reader.read(CHUNK_BYTES):
                writer.write(data)
                await writer.drain()
        await writer.drain()
        # Left open: the console's end is the client's to choose, as a VNC server's would be.
        await reader.read()
    except (OSError, asyncio.IncompleteReadError):
        pass  # the proxy went away: nothing to carry any more
    finally:
        writer.close()


async def main() -> None:
    server = await asyncio.start_server(serve_one, "127.0.0.1", 0, limit=CHUNK_BYTES)
    print(server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
