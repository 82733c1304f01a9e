"""Shared runtime of wsproxy-agent: the command line, config, logging and ZeroMQ helpers."""

__version__ = "0.1.0"
