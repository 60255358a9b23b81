"""The basics a packaged command is expected to have: version, -m, completion, man, quiet stderr."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, Cli
from wifisync import __version__

BIN = Path(sys.executable).parent  # the venv's console scripts: `wifisync` itself


def _plain_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A user's environment with no home chosen, no runtime dir and no password."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WIFISYNC_", "XDG_"))}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(REPO), **extra)
    return env


def test_version_and_python_dash_m(tmp_path: Path) -> None:
    for argv in ([sys.executable, "-m", "wifisync", "--version"],
                 [sys.executable, "-m", "wifisync.cli.main", "--version"]):
        r = subprocess.run(argv, capture_output=True, text=True, env=_plain_env(tmp_path),
                           check=False)
        assert (r.returncode, r.stdout, r.stderr) == (0, f"wifisync {__version__}\n", "")


def test_no_python_warnings_without_xdg_runtime_dir(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "wifisync", "id"], capture_output=True, text=True,
                       env=_plain_env(tmp_path), check=False)
    assert r.returncode == 1
    assert r.stderr == ("wifisync: this device is not set up; run `wifisync init` to create a "
                        "vault, or `wifisync join CODE` to join one\n")


def test_bash_completes_commands_and_options(tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    env = _plain_env(tmp_path, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    script = subprocess.run(["wifisync", "completion", "bash"], capture_output=True,
                            text=True, env=env, check=True).stdout

    def complete(line: str) -> list[str]:
        words = line.split() + ([""] if line.endswith(" ") else [])
        probe = (f'COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}; '
                 f'COMP_WORDS=({" ".join(repr(w) for w in words)}); '
                 f'COMP_CWORD={len(words) - 1}; _python_argcomplete wifisync; '
                 'printf "%s\\n" "${COMPREPLY[@]}"')
        r = subprocess.run(["bash", "-c", f"{script}\n{probe}"], capture_output=True,
                           text=True, env=env, timeout=60, check=False)
        return sorted(x.strip() for x in r.stdout.split())

    assert complete("wifisync sta") == ["status"]
    assert [w for w in complete("wifisync service ") if not w.startswith("-")] == [
        "install", "uninstall"]
    assert complete("wifisync status --w") == ["--watch"]


def test_completion_scripts_for_zsh_and_fish_and_install(cli: Cli, tmp_path: Path) -> None:
    assert cli.ok("completion", "zsh").startswith("#compdef wifisync")
    assert "complete --command wifisync" in cli.ok("completion", "fish")
    out = cli.ok("completion", "fish", "--install",
                 env={"XDG_CONFIG_HOME": str(tmp_path / "cfg")})
    installed = (tmp_path / "cfg/fish/completions/wifisync.fish").read_text()
    assert "complete --command wifisync" in installed
    assert "wrote" in out
    assert cli.fails("completion", "tcsh", code=2).startswith("wifisync: argument SHELL")


def test_the_man_page_is_generated_from_the_current_parser(tmp_path: Path) -> None:
    tool = BIN / "argparse-manpage"
    if not tool.exists():
        pytest.skip("argparse-manpage (a dev dependency) is not installed")
    make = subprocess.run(["make", "-s", "-C", str(REPO), "--dry-run", "man"],
                          capture_output=True, text=True, check=True).stdout
    command = make.replace("--output docs/wifisync.1", f"--output {tmp_path / 'w.1'}")
    subprocess.run(["sh", "-c", command], cwd=REPO, check=True, capture_output=True)
    fresh = (tmp_path / "w.1").read_text().splitlines()[1:]  # line 1 holds the date
    committed = (REPO / "docs/wifisync.1").read_text().splitlines()[1:]
    assert fresh == committed, "docs/wifisync.1 is stale: run `make man`"


def test_a_kdbx_import_without_the_extra_names_the_extra(initialised_cli: Cli,
                                                         tmp_path: Path) -> None:
    kdbx = tmp_path / "vault.kdbx"
    kdbx.write_bytes(b"\x03\xd9\xa2\x9a" + b"\0" * 64)
    secret = tmp_path / "kp.txt"
    secret.write_text("pw\n")
    hide = ("import sys; sys.modules['pykeepass'] = None; "  # as if the extra were not installed
            "from wifisync.cli.main import main; sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", hide, "--home", str(initialised_cli.home),
                        "import", str(kdbx), "--source-password-file", str(secret)],
                       capture_output=True, text=True, env=initialised_cli.env(), check=False)
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith("wifisync: reading KeePass files needs the optional extra: "
                               "pip install 'wifisync[keepass]'"), r.stderr
    assert len(r.stderr.splitlines()) == 1


def test_join_without_address_and_without_a_network_says_so_at_once(cli: Cli) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a network namespace without interfaces")
    r = subprocess.run(["unshare", "-n", *cli.argv("join", "42-maple-violin")],
                       capture_output=True, text=True, env=cli.env(), timeout=30, check=False)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.splitlines()
    assert lines[0].startswith("looking on the local network for the device showing code 42-")
    assert lines[1] == ("wifisync: no IPv4 address on any network interface to look for the "
                        "pairing device by mDNS; give its address with --address HOST:PORT")


def test_each_command_is_registered_by_the_module_main_imports_for_it() -> None:
    """`wifisync show` imports one command module; the table naming it must be right."""
    import argparse

    from wifisync.cli.main import MODULES, OWNER, command_modules

    owners: dict[str, str] = {}
    for name, module in zip(MODULES, command_modules(), strict=True):
        sub = argparse.ArgumentParser().add_subparsers()
        module.register(sub)
        owners.update(dict.fromkeys(sub.choices, name))
    assert owners == OWNER


def test_a_short_command_does_not_import_the_others(initialised_cli: Cli) -> None:
    code = ("import sys; from wifisync.cli.main import main; status = main(sys.argv[1:]); "
            "sys.stderr.write(' '.join(sorted(sys.modules))); sys.exit(status)")

    def modules(*args: str) -> set[str]:
        r = subprocess.run([sys.executable, "-c", code, "--home", str(initialised_cli.home),
                            *args], capture_output=True, text=True, timeout=120,
                           env=initialised_cli.env(), check=False)
        assert r.returncode == 0, r.stderr
        return set(r.stderr.split())

    others = {"wifisync.cli.commands_transfer", "wifisync.transfer.importers",
              "wifisync.cli.commands_pairing", "wifisync.cli.commands_service"}
    loaded = modules("status", "--json")
    assert "wifisync.cli.commands_daemon" in loaded and not loaded & others
    loaded = modules("list")  # reading the vault needs neither sync nor the daemon's parts
    assert "wifisync.vault.unlocked" in loaded
    assert not loaded & {*others, "wifisync.sync", "wifisync.daemon", "aiohttp"}
    # Nor does finding one item need the cryptography package (device certificates and
    # keys are read by model/certder.py, keys derived on hmac), thread pools, TOML without
    # a config file, the platform folders under --home, or starting processes.
    initialised_cli.ok("add", "Router", "--field", "password=hunter2")
    (initialised_cli.home / "config" / "config.toml").unlink()  # as `init` leaves a home
    start_up = {"cryptography", "concurrent.futures", "tomllib", "platformdirs", "subprocess"}
    for args in (("show", "router"), ("get", "Router"), ("list",)):
        loaded = modules(*args)
        assert "wifisync.model.certder" in loaded
        assert not loaded & start_up, (args, loaded & start_up)
