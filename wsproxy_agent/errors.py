"""The one base of the agents' own errors: each carries a sentence a person can act on.

The command line prints the sentence and exits 1; daemons log it. Protocol refusals
have their own base, ``protocol.errors.ProtocolError``, because ``protocol`` imports
nothing of ours.
"""

from __future__ import annotations


class AgentError(Exception):
    def __init__(self, sentence: str) -> None:
        super().__init__(sentence)
        self.sentence = sentence
