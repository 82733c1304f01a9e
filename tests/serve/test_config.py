"""``proxy serve`` reads oVirt's websocket proxy config: files, order, defaults, bad values."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from console_proxy.settings import ServeConfigError, ServeSettings
from tests.serve.conftest import ServeHost
from wsproxy_agent.demo import free_port
from wsproxy_agent.paths import HostPaths

ENGINE_CERT = "CERT_FOR_DATA_VERIFICATION=/etc/pki/ovirt-engine/certs/engine.cer\n"


def write_conf(root: Path, name: str, text: str) -> Path:
    paths = HostPaths.under(root)
    path = paths.proxy_main_conf if name == "main" else paths.proxy_conf_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_main_file_then_conf_d_in_name_order_later_wins(tmp_path: Path) -> None:
    write_conf(
        tmp_path,
        "main",
        "PROXY_PORT=1111\nSSL_CIPHERS=HIGH\nPROXY_HOST=main.example\nKEYS=/etc/keys\n",
    )
    write_conf(tmp_path, "20-local.conf", "PROXY_PORT=3333\nSSL_KEY=${KEYS}/proxy.key\n")
    # Name order, not the order the files were written in.
    write_conf(
        tmp_path, "10-setup.conf", "PROXY_PORT=2222\nSSL_MIN_VERSION=TLSv1.3\n" + ENGINE_CERT
    )
    write_conf(tmp_path, "30-later.conf", 'SSL_CIPHERS="HIGH:!aNULL:!MD5"  # stricter\n')
    write_conf(tmp_path, "99-ignored.conf.rpmsave", "PROXY_PORT=9999\n")

    s = ServeSettings.load(tmp_path)

    assert s.proxy_port == 3333
    assert s.ssl_min_version == "TLSv1.3"
    assert s.ssl_ciphers == "HIGH:!aNULL:!MD5"
    assert s.proxy_host == "main.example"  # set only in the main file
    # Host paths are read under --root; ${NAME} sees keys of earlier files.
    assert s.ssl_key == tmp_path / "etc/keys/proxy.key"
    assert s.cert_for_data_verification == tmp_path / "etc/pki/ovirt-engine/certs/engine.cer"


def test_defaults_are_those_of_ovirts_packaged_config(tmp_path: Path) -> None:
    write_conf(tmp_path, "10-setup.conf", ENGINE_CERT)
    s = ServeSettings.load(tmp_path)
    assert (s.proxy_host, s.proxy_port, s.source_is_ipv6) == ("*", 6100, False)
    assert (s.ssl_only, s.ssl_min_version, s.ssl_ciphers) == (False, "TLSv1.2", "HIGH:!aNULL")
    assert s.ssl_certificate is None and s.ssl_key is None and not s.trace_enable


@pytest.mark.parametrize(
    ("value", "expected"),
    [("True", True), ("yes", True), ("1", True), ("t", True), ("False", False), ("no", False)],
)
def test_booleans_as_ovirt_reads_them(tmp_path: Path, value: str, expected: bool) -> None:
    write_conf(
        tmp_path,
        "10-setup.conf",
        ENGINE_CERT + f"SSL_CERTIFICATE=/c.pem\nSSL_ONLY={value}\nSOURCE_IS_IPV6={value}\n",
    )
    s = ServeSettings.load(tmp_path)
    assert s.ssl_only is expected and s.source_is_ipv6 is expected


@pytest.mark.parametrize(
    ("line", "key", "words"),
    [
        ("SSL_ONLY=maybe", "SSL_ONLY", "neither True nor False"),
        ("PROXY_PORT=70000", "PROXY_PORT", "not a TCP port"),
        ("PROXY_PORT=61OO", "PROXY_PORT", "not a TCP port"),
        ("SSL_MIN_VERSION=TLSv1.1", "SSL_MIN_VERSION", "TLSv1.2 or TLSv1.3"),
        ("SSL_CERTIFICATE=certs/proxy.cer", "SSL_CERTIFICATE", "not an absolute path"),
        ("SSL_ONLY=True\nSSL_CERTIFICATE=", "SSL_ONLY", "SSL_CERTIFICATE is not set"),
        ("CERT_FOR_DATA_VERIFICATION=", "CERT_FOR_DATA_VERIFICATION", "engine certificate"),
    ],
)
def test_a_bad_value_names_its_file_and_key(
    tmp_path: Path, line: str, key: str, words: str
) -> None:
    write_conf(tmp_path, "10-setup.conf", ENGINE_CERT + "SSL_CERTIFICATE=/c.pem\n")
    local = write_conf(tmp_path, "20-local.conf", line + "\n")
    with pytest.raises(ServeConfigError) as caught:
        ServeSettings.load(tmp_path)
    assert caught.value.sentence.startswith(f"{key} in {local} ")
    assert words in caught.value.sentence


def test_a_broken_line_names_its_file(tmp_path: Path) -> None:
    write_conf(tmp_path, "10-setup.conf", ENGINE_CERT)
    broken = write_conf(tmp_path, "20-local.conf", "PROXY_PORT=$HOME\n")
    with pytest.raises(ServeConfigError, match=f"{broken}: line 1"):
        ServeSettings.load(tmp_path)


def test_serve_listens_on_the_port_the_last_file_sets(serve_host: ServeHost) -> None:
    serve_host.install()  # 10-setup.conf names serve_host.port
    winner = free_port()
    write_conf(serve_host.root, "main", f"PROXY_PORT={free_port()}\n")
    write_conf(serve_host.root, "50-local.conf", f"PROXY_PORT={winner}\n")
    serve_host.start()
    (listening,) = serve_host.events("console_proxy_listening")
    assert (listening["address"], listening["port"]) == ("127.0.0.1", winner)


def test_a_bad_value_stops_serve_with_a_sentence_not_a_traceback(
    serve_host: ServeHost,
) -> None:
    serve_host.install()
    local = write_conf(serve_host.root, "20-local.conf", "SSL_ONLY=maybe\n")
    result = subprocess.run(
        serve_host.command("proxy", "serve"), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert f"error: SSL_ONLY in {local} is 'maybe'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_certificate_that_does_not_match_its_key_stops_serve_at_start(
    serve_host: ServeHost,
) -> None:
    serve_host.install()
    other = serve_host.pki.issue()
    serve_host.write(serve_host.paths.proxy_tls_key, other.key_pem)
    result = subprocess.run(
        serve_host.command("proxy", "serve"), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "error: Cannot use the certificate" in result.stderr
    assert "the key must belong to the certificate" in result.stderr
    assert "Traceback" not in result.stderr


def test_without_websockets_serve_says_which_extra_to_install(tmp_path: Path) -> None:
    # A None entry in sys.modules makes 'import websockets' fail as if it were not installed.
    code = (
        "import sys; sys.modules['websockets'] = None\n"
        "from wsproxy_agent.cli import main\n"
        f"main(['--root', {str(tmp_path)!r}, 'proxy', 'serve'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "install wsproxy-agent[serve]" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_proxy_agent_never_imports_websockets() -> None:
    code = (
        "import sys\n"
        "import proxy_agent.cli, proxy_agent.daemon, proxy_agent.join\n"
        "from wsproxy_agent.cli import main\n"
        "assert 'websockets' not in sys.modules, 'websockets was imported'\n"
        "assert 'console_proxy.server' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_help_says_it_is_a_drop_in_reading_ovirts_config(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wsproxy_agent", "proxy", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "drop-in for oVirt's ovirt-websocket-proxy" in text
    assert "/etc/ovirt-engine/ovirt-websocket-proxy.conf" in text


def test_star_with_source_is_ipv6_listens_on_both_families(serve_host: ServeHost) -> None:
    serve_host.install(PROXY_HOST="*", SOURCE_IS_IPV6="True")
    serve_host.start()
    (listening,) = serve_host.events("console_proxy_listening")
    assert listening["address"] == "::"
    for address in ("127.0.0.1", "::1"):
        socket.create_connection((address, serve_host.port), timeout=10).close()


def test_star_without_source_is_ipv6_is_every_ipv4_address(serve_host: ServeHost) -> None:
    serve_host.install(PROXY_HOST="*")
    serve_host.start()
    (listening,) = serve_host.events("console_proxy_listening")
    assert listening["address"] == "0.0.0.0"
    with pytest.raises(OSError):
        socket.create_connection(("::1", serve_host.port), timeout=10).close()
