"""The engine and the proxy on two hosts: each in its own network namespace."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Hosts, host_pair, short_tempdir
from tests.twohosts.netns import Link, linked_namespaces, skip_unless_possible

_tags = itertools.count(1)


@pytest.fixture
def two_hosts() -> Iterator[tuple[Hosts, Link]]:
    skip_unless_possible()
    with linked_namespaces(str(next(_tags))) as link, host_pair(short_tempdir()) as h:
        h.engine_ip = link.engine_ip
        h.on_host = {h.engine: link.on(link.engine_ns), h.proxy: link.on(link.proxy_ns)}
        yield h, link


@pytest.fixture
def two_running(two_hosts: tuple[Hosts, Link]) -> tuple[Hosts, Link]:
    h, link = two_hosts
    h.engine_init()
    h.start_engine()
    return h, link
