"""The configuration: defaults, the documented example, and errors that name file and key."""

from __future__ import annotations

import dataclasses
import re
import socket
import tomllib
from pathlib import Path

import pytest

from wifisync.config import SECTIONS, Config, load_config, parse_config
from wifisync.errors import ConfigError
from wifisync.home import Home

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


def home_with(tmp_path: Path, text: str | None) -> Home:
    home = Home.locate(str(tmp_path))
    if text is not None:
        home.config_dir.mkdir(parents=True)
        home.config_file.write_text(text)
    return home


def test_missing_file_means_all_defaults(tmp_path: Path) -> None:
    assert load_config(home_with(tmp_path, None)) == Config()


def test_example_parses_to_exactly_the_defaults() -> None:
    assert parse_config(tomllib.loads(EXAMPLE.read_text()), EXAMPLE) == Config()


def test_example_documents_every_key_with_a_comment() -> None:
    text = EXAMPLE.read_text()
    data = tomllib.loads(text)
    assert set(SECTIONS) == {f.name for f in dataclasses.fields(Config)} == set(data)
    for name, section in SECTIONS.items():
        keys = {f.name for f in dataclasses.fields(section)}
        assert set(data[name]) == keys, name
        for key in keys:
            # the line before each key is a comment saying what it does
            assert re.search(rf"^#.*\n{key} = ", text, re.M), f"{name}.{key} has no comment"


def test_values_are_typed(tmp_path: Path) -> None:
    config = load_config(home_with(tmp_path, """
[device]
name = "nas"
[vault]
kdf_opslimit = 4
kdf_memlimit_mib = 256
[daemon]
listen = "[::1]:9000"
peers = ["192.168.1.5:7415", "nas.local:7415"]
mdns = false
interfaces = ["eth0"]
ping_interval = 2
peer_timeout = 6.5
pairing_timeout = 60
log_level = "DEBUG"
"""))
    assert config.device.display_name == "nas"
    assert config.vault.kdf_memlimit == 256 * 1024 * 1024
    d = config.daemon
    assert d.listen == "[::1]:9000"
    assert d.peers == ("192.168.1.5:7415", "nas.local:7415")
    assert (d.mdns, d.interfaces, d.ping_interval, d.peer_timeout) == (False, ("eth0",), 2.0, 6.5)
    assert (d.pairing_timeout, d.log_level) == (60, "debug")


def test_empty_device_name_means_the_host_name() -> None:
    assert Config().device.display_name == socket.gethostname()


@pytest.mark.parametrize(("text", "message"), [
    ("[daemon]\nlisten = \"abc\"", "daemon.listen: expected HOST:PORT, got 'abc'"),
    ("[daemon]\nlisten = \"h:0\"", "daemon.listen: port must be 1-65535"),
    ("[daemon]\nlisten = \"::1:80\"", "daemon.listen: expected HOST:PORT (IPv6 in brackets)"),
    ("[daemon]\npeers = \"h:1\"", "daemon.peers: expected a list"),
    ("[daemon]\npeers = [\"h:1\", \"h\"]", "daemon.peers: expected HOST:PORT, got 'h'"),
    ("[daemon]\nmdns = \"yes\"", "daemon.mdns: expected true or false"),
    ("[daemon]\ninterfaces = [\"\"]", "daemon.interfaces: expected a list of interface names"),
    ("[daemon]\nping_interval = 0", "daemon.ping_interval: must be greater than 0"),
    ("[daemon]\nping_interval = true", "daemon.ping_interval: expected a number"),
    ("[daemon]\nping_interval = 40.0", "daemon.peer_timeout: must be longer than"),
    ("[daemon]\npairing_timeout = 1.5", "daemon.pairing_timeout: expected a whole number"),
    ("[daemon]\nlog_level = \"loud\"", "daemon.log_level: expected one of debug, info"),
    ("[daemon]\nport = 1", "daemon.port: unknown key (known: listen, "),
    ("[vault]\nkdf_opslimit = 0", "vault.kdf_opslimit: must be at least 1, got 0"),
    ("[vault]\nkdf_memlimit_mib = 63", "vault.kdf_memlimit_mib: must be at least 64, got 63"),
    ("[device]\nname = 5", "device.name: expected a string"),
    ("[device]\nname = \"a\\nb\"", "device.name: expected a printable name"),
    ("[sync]\n", "unknown section [sync]"),
    ("daemon = 1", "daemon: expected a [daemon] table"),
])
def test_bad_values_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    home = home_with(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(home)
    assert str(err.value).startswith(f"{home.config_file}: ")
    assert message in str(err.value)


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    home = home_with(tmp_path, "[vault]\n\nkdf_opslimit = = 3\n")
    with pytest.raises(ConfigError, match=r"config\.toml: invalid TOML: .*line 3"):
        load_config(home)


def test_unreadable_bytes_are_reported(tmp_path: Path) -> None:
    home = home_with(tmp_path, None)
    home.config_dir.mkdir(parents=True)
    home.config_file.write_bytes(b"\xff\xfe[x]")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(home)
