"""The browser's websocket connection while it carries a console: bytes both ways from the
event loop's callbacks, as they are parsed or read, while nothing waits.

Through websockets' own asyncio API every message wakes the console's task twice: once for
the frame parsed (its message queue), once more for the target's bytes to be sent (a future,
then ``send()``'s context and drain). A round trip of a keystroke and its screen update paid
that on every hop; here a binary frame goes to the target's transport from the callback that
parsed it, and the target's bytes are framed and written from the callback that read them.
Whenever one side pushes back or something else waits (a fragmented or text message, frames
already queued, the connection closing), the bytes take the queued path that waits, which
keeps their order and the flow control.

The hooks reach into websockets' connection (its sans-I/O ``protocol``, its message queue, its
``paused`` flag and ``send_data``), the same from 14.0 to 17.4, the versions the ``serve``
extra allows.
"""

from __future__ import annotations

from collections.abc import Callable

from websockets.frames import Frame, Opcode
from websockets.protocol import Event, State

from console_proxy.front import FrontDoorConnection


class ConsoleConnection(FrontDoorConnection):
    # Set by the console's bridge while it carries bytes: takes a binary frame as it is parsed
    # (True) or leaves it to the message queue the console's task reads (False).
    take_frame: Callable[[bytes], bool] | None = None

    def process_event(self, event: Event) -> None:
        take = self.take_frame
        if (
            take is not None
            and isinstance(event, Frame)
            and event.opcode is Opcode.BINARY
            and event.fin
            and not self.recv_messages.frames  # queued frames go first
            and take(bytes(event.data))
        ):
            return
        super().process_event(event)

    def send_now(self, data: bytes) -> bool:
        """Send ``data`` as a binary message at once, without waiting; False (nothing sent)
        when the connection is not open or pushes back, for ``send()`` to wait."""
        if self.protocol.state is not State.OPEN or self.paused:
            return False
        self.protocol.send_binary(data)
        self.send_data()
        return True
