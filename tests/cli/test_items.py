"""Every item command through a real subprocess, as a user runs it."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys

import msgpack

from tests.conftest import PASSWORD, Cli

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
DEVICE_ID = re.compile(r"^([A-Z2-7]{7}-){7}[A-Z2-7]{7}$")


def test_init_prints_the_device_id_that_id_repeats(cli: Cli) -> None:
    device_id = cli.init()
    assert DEVICE_ID.match(device_id)
    assert cli.ok("id").strip() == device_id
    assert (cli.home / "data" / "device.key").stat().st_mode & 0o777 == 0o600


def test_id_needs_no_password(initialised_cli: Cli) -> None:
    out = initialised_cli.ok("id", env={"WIFISYNC_PASSWORD": None})
    assert DEVICE_ID.match(out.strip())


def test_init_reads_the_password_from_stdin(cli: Cli) -> None:
    cli.password = None
    cli.ok("--password-stdin", "init", "--name", "laptop", input="from stdin\n")
    assert cli.ok("--password-stdin", "list", input="from stdin\n") == ""
    assert "wrong master password" in cli.fails("--password-stdin", "list", input="other\n")


def test_add_prints_only_the_new_id(initialised_cli: Cli) -> None:
    out = initialised_cli.ok("add", "Mail", "--field", "user=alice", "--tag", "web")
    assert re.fullmatch(r"[0-9a-f]{32}\n", out)


def test_list_json_has_summaries_without_field_values(initialised_cli: Cli) -> None:
    c = initialised_cli
    a = c.ok("add", "Mail", "--field", "password=hunter2", "--tag", "web", "--tag", "a").strip()
    b = c.ok("add", "bank card", "--type", "card", "--field", "pin=9876").strip()
    listed = json.loads(c.ok("list", "--json"))
    assert [x["id"] for x in listed] == [b, a]  # sorted by title, case-insensitive
    assert listed[1] == {"id": a, "title": "Mail", "type": "login", "tags": ["a", "web"],
                         "updated": listed[1]["updated"]}
    assert all(ISO_UTC.match(x["updated"]) for x in listed)
    assert "hunter2" not in c.ok("list") and "9876" not in c.ok("list", "--json")
    text = c.ok("list")
    assert "Mail" in text and "bank card" in text and a[:12] in text


def test_list_sorts_by_title_in_any_case_then_id_in_table_and_json(initialised_cli: Cli
                                                                    ) -> None:
    c = initialised_cli
    ids = {title: c.ok("add", title, "--tag", "t").strip()
           for title in ("beta", "Alpha", "alpha", "Alph", "gamma")}
    by_id = sorted((ids["Alpha"], ids["alpha"]))
    want = [ids["Alph"], *by_id, ids["beta"], ids["gamma"]]
    text = c.ok("list")
    assert [line[:12] for line in text.splitlines()] == [i[:12] for i in want]
    raw = c.ok("list", "--json")
    assert [x["id"] for x in json.loads(raw)] == want
    assert raw == json.dumps(json.loads(raw), indent=2, ensure_ascii=False) + "\n"
    assert c.ok("list", "nothing-matches", "--json") == "[]\n"


def test_show_json_has_fields_and_no_conflicts(initialised_cli: Cli) -> None:
    c = initialised_cli
    a = c.ok("add", "Mail", "--field", "user=alice", "--field", "password=p w=x",
             "--tag", "web").strip()
    shown = json.loads(c.ok("show", "Mail", "--json"))
    assert shown == {"id": a, "title": "Mail", "type": "login", "tags": ["web"],
                     "fields": {"user": "alice", "password": "p w=x"}, "attachments": [],
                     "updated": shown["updated"], "conflicts": 0}
    assert ISO_UTC.match(shown["updated"])
    text = c.ok("show", a[:6])
    assert "password: p w=x" in text and "user: alice" in text


def test_item_can_be_named_by_id_prefix_or_title(initialised_cli: Cli) -> None:
    c = initialised_cli
    a = c.ok("add", "Mail").strip()
    for ref in (a, a.upper(), a[:4], "Mail"):
        assert json.loads(c.ok("show", ref, "--json"))["id"] == a


def test_edit_changes_title_type_fields_and_tags(initialised_cli: Cli) -> None:
    c = initialised_cli
    a = c.ok("add", "Mail", "--field", "user=alice", "--field", "password=old",
             "--tag", "web").strip()
    before = json.loads(c.ok("show", a, "--json"))
    c.ok("edit", "Mail", "--title", "Webmail", "--type", "note", "--field", "password=new",
         "--field", "url=https://x", "--unset", "user", "--tag", "mail", "--tag", "home")
    after = json.loads(c.ok("show", a, "--json"))
    assert after["title"] == "Webmail" and after["type"] == "note"
    assert after["fields"] == {"password": "new", "url": "https://x"}
    assert after["tags"] == ["home", "mail"]
    assert after["updated"] >= before["updated"]
    c.ok("edit", a, "--field", "note=x")
    assert json.loads(c.ok("show", a, "--json"))["tags"] == ["home", "mail"]  # tags kept


def test_edit_without_changes_is_a_usage_error(initialised_cli: Cli) -> None:
    initialised_cli.ok("add", "Mail")
    assert "nothing to change" in initialised_cli.fails("edit", "Mail", code=2)


def test_unset_of_a_missing_field_is_refused(initialised_cli: Cli) -> None:
    initialised_cli.ok("add", "Mail")
    assert "no field 'nope'" in initialised_cli.fails("edit", "Mail", "--unset", "nope", code=2)


def test_rm_hides_the_item_but_keeps_its_history(initialised_cli: Cli) -> None:
    c = initialised_cli
    a = c.ok("add", "Mail", "--field", "password=one").strip()
    c.ok("edit", a, "--field", "password=two")
    c.ok("rm", "Mail")
    assert json.loads(c.ok("list", "--json")) == []
    assert "no item" in c.fails("show", a)
    assert "no item" in c.fails("rm", a)
    history = json.loads(c.ok("history", a, "--json"))
    assert [v["deleted"] for v in history] == [False, False, True]
    assert [v.get("fields") for v in history] == [{"password": "one"}, {"password": "two"}, None]


def test_history_lists_every_version_oldest_first(initialised_cli: Cli) -> None:
    c = initialised_cli
    device_id = c.ok("id").strip()
    a = c.ok("add", "Mail", "--field", "password=one").strip()
    c.ok("edit", "Mail", "--field", "password=two")
    c.ok("edit", "Mail", "--title", "Webmail")
    history = json.loads(c.ok("history", a, "--json"))
    assert [v["fields"]["password"] for v in history] == ["one", "two", "two"]
    assert [v["title"] for v in history] == ["Mail", "Mail", "Webmail"]
    assert {v["author"] for v in history} == {device_id}
    assert {v["author_name"] for v in history} == {"test-device"}
    assert [v["seq"] for v in history] == sorted(v["seq"] for v in history)
    assert all(ISO_UTC.match(v["time"]) for v in history)
    text = c.ok("history", "Webmail")
    assert text.count("test-device") == 3 and "password: one" in text


def test_passwd_changes_the_master_password(initialised_cli: Cli) -> None:
    c = initialised_cli
    a = c.ok("add", "Mail", "--field", "password=kept").strip()
    c.ok("passwd", "--allow-weak", env={"WIFISYNC_NEW_PASSWORD": "new secret"})
    assert "wrong master password" in c.fails("list")
    c.password = "new secret"
    assert json.loads(c.ok("show", a, "--json"))["fields"] == {"password": "kept"}
    c.password = None
    c.ok("--password-stdin", "passwd", "--allow-weak", input="new secret\nthird one\n")
    assert json.loads(c.ok("--password-stdin", "list", "--json", input="third one\n"))[0]["id"] == a


def test_passwd_without_a_new_password_changes_nothing(initialised_cli: Cli) -> None:
    c = initialised_cli
    assert "no master password" in c.fails("passwd")
    c.ok("list")  # the old password still works


def test_init_writes_the_kdf_cost_from_the_config(cli: Cli) -> None:
    cli.home.joinpath("config").mkdir(parents=True)
    cli.home.joinpath("config", "config.toml").write_text(
        "[vault]\nkdf_opslimit = 2\nkdf_memlimit_mib = 65\n")
    cli.init(fast=False)
    db = sqlite3.connect(cli.home / "data" / "vault.db")
    (data,) = db.execute("SELECT data FROM records WHERE kind = 3").fetchone()
    db.close()
    _header, body, _sig = msgpack.unpackb(data)
    kdf = msgpack.unpackb(body)["kdf"]
    assert (kdf["ops"], kdf["mem"]) == (2, 65 * 1024 * 1024)


def test_empty_vault_lists_nothing(initialised_cli: Cli) -> None:
    assert initialised_cli.ok("list") == ""
    assert json.loads(initialised_cli.ok("list", "--json")) == []


def test_home_can_come_from_the_environment(initialised_cli: Cli) -> None:
    c = initialised_cli
    a = c.ok("add", "Mail").strip()
    r = subprocess.run([sys.executable, "-m", "wifisync.cli.main", "list", "--json"],
                       env=c.env({"WIFISYNC_HOME": str(c.home)}), capture_output=True,
                       text=True, check=True)
    assert json.loads(r.stdout)[0]["id"] == a
    assert PASSWORD not in r.stdout


def test_a_secret_field_is_read_from_stdin_stored_hidden_and_masked(initialised_cli: Cli
                                                                    ) -> None:
    """`--secret NAME` keeps the value out of argv; `show` masks it unless --reveal."""
    c = initialised_cli
    c.ok("add", "Router", "--field", "user=admin", "--secret", "password", input="hunter2\n")
    text = c.ok("show", "Router")
    assert "hunter2" not in text
    assert "password: ******** (hidden" in text and "user: admin" in text
    assert "password: hunter2" in c.ok("show", "Router", "--reveal")
    shown = json.loads(c.ok("show", "Router", "--json"))
    assert shown["fields"] == {"user": "admin", "password": "hunter2"}
    assert "hunter2" not in c.ok("history", "Router")

    # With --password-stdin the master password is the first line, then one per --secret.
    c.ok("--password-stdin", "edit", "Router", "--secret", "pin", "--field", "user=root",
         input=f"{PASSWORD}\n1234\n", env={"WIFISYNC_PASSWORD": None})
    shown = json.loads(c.ok("show", "Router", "--json"))
    assert shown["fields"] == {"user": "root", "password": "hunter2", "pin": "1234"}
    text = c.ok("show", "Router")
    assert "pin: ******** (hidden" in text and "password: ******** (hidden" in text


def test_a_secret_without_its_line_changes_nothing(initialised_cli: Cli) -> None:
    c = initialised_cli
    line = c.fails("add", "Router", "--secret", "password", input="")
    assert line == "wifisync: no line on standard input for 'password'"
    assert json.loads(c.ok("list", "--json")) == []
    assert "expected a field NAME" in c.fails("add", "Router", "--secret", "a=b", code=2)
