"""``wsproxy-agent proxy serve``: an oVirt-compatible websocket proxy (needs the [serve] extra).

The console ticket travels in the HTTP request line, which websockets caps at 8 KiB unless
told otherwise through its documented WEBSOCKETS_MAX_LINE_LENGTH, read when websockets is
first imported. Room for the largest ticket ``verify_ticket`` measures itself means an
oversized ticket is refused, and logged, like any other bad ticket.
"""

import os

from protocol.ticket import MAX_TICKET_BYTES

os.environ.setdefault("WEBSOCKETS_MAX_LINE_LENGTH", str(MAX_TICKET_BYTES + 1024))
