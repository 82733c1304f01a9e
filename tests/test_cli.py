"""The command line: help everywhere, version, and friendly errors instead of tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from wsproxy_agent import __version__
from wsproxy_agent.cli import main

COMMANDS = [
    [],
    ["engine"],
    ["engine", "init"],
    ["engine", "run"],
    ["engine", "activate"],
    ["engine", "deactivate"],
    ["engine", "renew"],
    ["engine", "rotate-keys"],
    ["engine", "ticket"],
    ["token"],
    ["token", "create"],
    ["token", "list"],
    ["token", "revoke"],
    ["keys"],
    ["keys", "list"],
    ["keys", "accept"],
    ["keys", "reject"],
    ["keys", "delete"],
    ["keys", "revoke"],
    ["proxy"],
    ["proxy", "join"],
    ["proxy", "renew"],
    ["proxy", "run"],
    ["status"],
]


@pytest.mark.parametrize("words", COMMANDS, ids=lambda w: " ".join(w) or "top")
def test_every_command_has_help(words: list[str]) -> None:
    result = CliRunner().invoke(main, [*words, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and len(result.output.splitlines()) > 3


def test_top_level_help_lists_every_group() -> None:
    output = CliRunner().invoke(main, ["--help"]).output
    for name in ("engine", "token", "keys", "proxy", "status", "--root", "--log-format"):
        assert name in output


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_console_script_runs_from_the_venv() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wsproxy_agent", "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "Usage:" in proc.stdout


def test_status_on_an_empty_root_says_what_to_do(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--root", str(tmp_path), "status"])
    assert result.exit_code == 1
    assert "engine init" in result.output and "proxy join" in result.output


@pytest.mark.parametrize(
    "args, phrase",
    [
        (["token", "create", "--proxy", "p.example"], "engine init"),
        (["keys", "list"], "engine init"),
        (["proxy", "run"], "proxy join"),
        (["proxy", "join", "not-a-join-string"], "wsproxy://"),
        (["proxy", "join", "--engine", "h", "--engine-key", "garbage"], "engine key"),
    ],
)
def test_errors_are_sentences_not_tracebacks(tmp_path: Path, args: list[str], phrase: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wsproxy_agent", "--root", str(tmp_path), *args],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and phrase in proc.stderr


def test_a_config_without_init_is_a_sentence_not_a_database_error(tmp_path: Path) -> None:
    # A site may write engine.toml (its commands) before running 'engine init'.
    (tmp_path / "etc/wsproxy-agent").mkdir(parents=True)
    (tmp_path / "etc/wsproxy-agent/engine.toml").write_text("command_timeout = 5\n")
    for args in (["token", "create", "--proxy", "p.example"], ["keys", "list"], ["status"]):
        proc = subprocess.run(
            [sys.executable, "-m", "wsproxy_agent", "--root", str(tmp_path), *args],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "engine init" in proc.stderr and "OperationalError" not in proc.stderr


def test_status_does_not_import_cryptography_or_structlog(tmp_path: Path) -> None:
    code = (
        "import sys; from wsproxy_agent.cli import main\n"
        "try:\n    main(['--root', sys.argv[1], 'status'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cryptography', 'structlog')))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True
    )
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout + proc.stderr
