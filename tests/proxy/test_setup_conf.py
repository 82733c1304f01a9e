from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy_agent.setup_conf import effective_config, matches, render
from wsproxy_agent.files import write_atomic
from wsproxy_agent.ovirt_conf import parse
from wsproxy_agent.paths import HostPaths

DESIGN_LINES = [
    "PROXY_PORT=6100",
    "SSL_CERTIFICATE=/etc/pki/ovirt-engine/certs/websocket-proxy.cer",
    "SSL_KEY=/etc/pki/ovirt-engine/keys/websocket-proxy.key.nopass",
    "CERT_FOR_DATA_VERIFICATION=/etc/pki/ovirt-engine/certs/engine.cer",
    "SSL_ONLY=True",
]


def settings(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_render_is_designs_lines_with_host_paths(tmp_path: Path) -> None:
    text = render(6100, HostPaths.under(tmp_path))
    assert settings(text) == DESIGN_LINES
    assert str(tmp_path) not in text
    assert text.startswith("#") and "wsproxy-agent" in text.splitlines()[0]
    assert text == render(6100, HostPaths.under("/"))


def test_round_trip_with_extra_keys(tmp_path: Path) -> None:
    extra = {
        "TRACE_FILE": "/var/log/ovirt engine/trace.log",  # a space: must be quoted
        "PROXY_HOST": "*",
        "SSL_CIPHERS": "HIGH:!aNULL",
        "SSL_MIN_VERSION": "TLSv1.3",
    }
    text = render(6200, HostPaths.under(tmp_path), extra)
    assert 'TRACE_FILE="/var/log/ovirt engine/trace.log"' in text
    assert "PROXY_HOST=*\n" in text  # bare where quotes are not needed
    # extra keys follow the DESIGN lines, in the module's fixed order
    assert settings(text)[5:] == [
        "PROXY_HOST=*",
        "SSL_MIN_VERSION=TLSv1.3",
        "SSL_CIPHERS=HIGH:!aNULL",
        'TRACE_FILE="/var/log/ovirt engine/trace.log"',
    ]
    got = parse(text)
    assert got["PROXY_PORT"] == "6200"
    assert {k: got[k] for k in extra} == extra


allowed = st.text(
    st.characters(blacklist_characters="\"'$`\\", blacklist_categories=("Cc", "Cs")), max_size=40
).filter(str.isprintable)


@given(allowed)
def test_any_allowed_value_round_trips(value: str) -> None:
    paths = HostPaths.under("/")
    assert parse(render(6100, paths, {"SSL_CIPHERS": value}))["SSL_CIPHERS"] == value


@pytest.mark.parametrize(
    "value", ["HIGH:!aNULL", "a b", "#x", "x#y", "~/trace", "a;b", "a&b", "(x)", "<>|", ""]
)
def test_a_shell_reads_the_same_value(tmp_path: Path, value: str) -> None:
    conf = tmp_path / "10-setup.conf"
    conf.write_text(render(6100, HostPaths.under(tmp_path), {"TRACE_FILE": value}))
    out = subprocess.run(
        ["sh", "-c", '. "$1" && printf %s "$TRACE_FILE"', "sh", str(conf)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert out.stdout == value == parse(conf.read_text())["TRACE_FILE"]


def test_parse_follows_the_services_reader() -> None:
    text = (
        "# comment\n"
        "\n"
        "   \n"
        "  PROXY_PORT=6100 # trailing comment\n"
        'A="x y" rest\n'
        "B=x y\n"
        "C='q'\n"
        "D=${PROXY_PORT}0\n"
        "E=a\\ b\r\n"
        "F=\n"
        "G=a#b\n"
    )
    assert parse(text) == {
        "PROXY_PORT": "6100",
        "A": "x y",
        "B": "x",
        "C": "'q'",  # single quotes are plain characters to oVirt's parser
        "D": "61000",
        "E": "a b",
        "F": "",
        "G": "a",
    }


@pytest.mark.parametrize("line", ["not a setting", "KEY value", "K=$X", "K=${X", "-K=1"])
def test_parse_refuses_what_the_service_refuses(line: str) -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse(f"# ok\n{line}\n")


def test_effective_config_later_files_win(tmp_path: Path) -> None:
    paths = HostPaths.under(tmp_path)
    paths.proxy_conf_dir.mkdir(parents=True)
    paths.proxy_main_conf.write_text("PROXY_PORT=1\nTRACE_ENABLE=False\nPROXY_HOST=*\n")
    paths.setup_conf.write_text(render(6100, paths))
    (paths.proxy_conf_dir / "05-early.conf").write_text("PROXY_PORT=2\nTRACE_ENABLE=True\n")
    # sorted as strings, like the service's sorted(glob()): "9-" comes after "10-"
    (paths.proxy_conf_dir / "9-late.conf").write_text("PROXY_PORT=7000\n")
    (paths.proxy_conf_dir / "10-setup.conf.bak").write_text("PROXY_PORT=3\n")
    (paths.proxy_conf_dir / ".99-hidden.conf").write_text("PROXY_PORT=4\n")
    (paths.proxy_conf_dir / "99-notes.txt").write_text("PROXY_PORT=5\n")
    got = effective_config(paths)
    assert got["PROXY_PORT"] == "7000"
    assert got["TRACE_ENABLE"] == "True"
    assert got["PROXY_HOST"] == "*"
    assert got["SSL_KEY"] == "/etc/pki/ovirt-engine/keys/websocket-proxy.key.nopass"


def test_effective_config_names_a_broken_file(tmp_path: Path) -> None:
    paths = HostPaths.under(tmp_path)
    paths.proxy_conf_dir.mkdir(parents=True)
    (paths.proxy_conf_dir / "50-broken.conf").write_text("oops\n")
    with pytest.raises(ValueError, match=r"50-broken\.conf: line 1"):
        effective_config(paths)
    assert effective_config(HostPaths.under(tmp_path / "empty")) == {}


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Unknown proxy setting ENGINE_USR"):
        render(6100, HostPaths.under(tmp_path), {"ENGINE_USR": "/tmp"})
    with pytest.raises(ValueError, match="Unknown proxy setting SSL_KEY"):
        render(6100, HostPaths.under(tmp_path), {"SSL_KEY": "/tmp/k"})


@pytest.mark.parametrize(
    "value",
    [
        "a\nPROXY_PORT=1",
        "x\ry",
        'say "hi"',
        "it's",
        "$(id)",
        "${HOME}",
        "`id`",
        "a\\b",
        "\t",
        "\x00",
    ],
)
def test_injection_characters_are_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ValueError, match="cannot hold it safely"):
        render(6100, HostPaths.under(tmp_path), {"TRACE_FILE": value})


@pytest.mark.parametrize("port", [0, 65536, -1, True, "6100"])
def test_bad_ports_are_refused(tmp_path: Path, port: object) -> None:
    with pytest.raises(ValueError, match="not a TCP port"):
        render(port, HostPaths.under(tmp_path))  # type: ignore[arg-type]


def test_bad_tls_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"TLSv1\.2 or TLSv1\.3"):
        render(6100, HostPaths.under(tmp_path), {"SSL_MIN_VERSION": "TLSv1"})


def test_matches_tracks_the_file_on_disk(tmp_path: Path) -> None:
    paths = HostPaths.under(tmp_path)
    assert not matches(paths, 6100)
    write_atomic(paths.setup_conf, render(6100, paths).encode())
    assert matches(paths, 6100)
    assert not matches(paths, 6200)
    assert not matches(paths, 6100, {"PROXY_HOST": "::"})
    # comments and blank lines do not count
    paths.setup_conf.write_text("# edited by hand\n\n" + render(6100, paths).replace("#", "##"))
    assert matches(paths, 6100)
    paths.setup_conf.write_text(render(6100, paths).replace("SSL_ONLY=True", "SSL_ONLY=False"))
    assert not matches(paths, 6100)
    paths.setup_conf.write_text(render(6100, paths) + "TRACE_ENABLE=True\n")
    assert not matches(paths, 6100)
    paths.setup_conf.write_text("garbage\n")
    assert not matches(paths, 6100)
