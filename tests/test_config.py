"""Reading engine.toml and proxy.toml: every bad value is a sentence naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsproxy_agent import config


def load(tmp_path: Path, text: str) -> dict[str, object]:
    path = tmp_path / "engine.toml"
    path.write_text(text)
    return config.load(path, config.ENGINE_DEFAULTS)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("failures_per_address = 0\n", "'failures_per_address' must be at least 1; it is 0"),
        ("token_max_failures = -3\n", "'token_max_failures' must be at least 1"),
        ("max_pending = -1\n", "'max_pending' must be at least 0"),
        ("max_pending = true\n", "'max_pending' must be a whole number"),
        ("no_such_key = 1\n", "'no_such_key' is not a setting"),
    ],
)
def test_bad_values_are_refused_with_the_key(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        load(tmp_path, text)
    assert words in caught.value.sentence


def test_zero_means_none_where_a_count_allows_it(tmp_path: Path) -> None:
    values = load(tmp_path, "max_pending = 0\nmax_pending_per_address = 0\n")
    assert values["max_pending"] == 0 and values["max_pending_per_address"] == 0
    assert values["failures_per_address"] == config.ENGINE_DEFAULTS["failures_per_address"]
