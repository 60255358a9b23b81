"""On a terminal the CLI prompts for the master password (twice when it is a new one)."""

from __future__ import annotations

import os
import select
import subprocess
import time

from tests.conftest import Cli

NO_ENV_PASSWORD: dict[str, str | None] = {"WIFISYNC_PASSWORD": None}


def converse(cli: Cli, args: list[str], answers: list[tuple[str, str]]) -> tuple[int, str]:
    """Run the CLI on a pseudo-terminal, answering each prompt in turn."""
    master, slave = os.openpty()
    proc = subprocess.Popen(cli.argv(*args), stdin=slave, stdout=slave, stderr=slave,
                            env=cli.env(NO_ENV_PASSWORD), start_new_session=True)
    os.close(slave)
    output = b""
    deadline = time.monotonic() + 60

    def read_some() -> bool:
        nonlocal output
        ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"timed out; output so far: {output!r}")
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            return False
        output += chunk
        return bool(chunk)

    try:
        for prompt, answer in answers:
            while prompt.encode() not in output:
                assert read_some(), f"no prompt {prompt!r} in {output!r}"
            output = output.split(prompt.encode(), 1)[1]
            os.write(master, answer.encode() + b"\n")
        while read_some():
            pass
        return proc.wait(timeout=60), output.decode(errors="replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_init_list_and_passwd_prompt_on_a_terminal(cli: Cli) -> None:
    rc, out = converse(cli, ["init", "--name", "tty"], [
        ("New master password: ", "typed secret"), ("Repeat it: ", "typed secret")])
    assert rc == 0, out
    assert "typed secret" not in out  # not echoed
    cli.password = "typed secret"
    cli.ok("add", "Mail")
    rc, out = converse(cli, ["list"], [("Master password: ", "typed secret")])
    assert rc == 0 and "Mail" in out, out
    rc, out = converse(cli, ["passwd"], [
        ("Master password: ", "typed secret"), ("New master password: ", "second Quokka 5531"),
        ("Repeat it: ", "second Quokka 5531")])
    assert rc == 0 and "master password changed" in out, out
    cli.password = "second Quokka 5531"
    assert "Mail" in cli.ok("list")


def test_mismatched_new_passwords_change_nothing(cli: Cli) -> None:
    rc, out = converse(cli, ["init"], [
        ("New master password: ", "one"), ("Repeat it: ", "two")])
    assert rc == 1 and "do not match" in out, out
    assert not cli.home.exists()
