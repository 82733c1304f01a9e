"""Sans-I/O core of the wsproxy-agent protocol: feed it bytes and time, read decisions.

Nothing in this package opens a socket, touches a file or reads a clock; the daemons do.
"""

from protocol.catalogue import MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, Role
from protocol.envelope import Message, Sealed, seal
from protocol.errors import ErrorCode, ProtocolError
from protocol.receive import Receiver

__all__ = [
    "MIN_PROTOCOL_VERSION",
    "PROTOCOL_VERSION",
    "ErrorCode",
    "Message",
    "ProtocolError",
    "Receiver",
    "Role",
    "Sealed",
    "seal",
]
