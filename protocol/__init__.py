"""Sans-I/O core of the wsproxy-agent protocol: feed it bytes and time, read decisions.

Nothing in this package opens a socket, touches a file or reads a clock; the daemons do.
Import the modules you need (``protocol.receive``, ``protocol.envelope``, ...): this
package file imports nothing, so a light user such as ``status`` does not pay for
the cryptography it does not use.
"""
