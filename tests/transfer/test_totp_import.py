"""Every source's TOTP field ends up in ``totp`` in a form ``wifisync code`` reads."""

from __future__ import annotations

from pathlib import Path

from tests.transfer import samples
from wifisync.transfer import importers
from wifisync.vault import totp

SECRET = "JBSWY3DPEHPK3PXP"


def test_exports_with_a_totp_column_or_field() -> None:
    for data in (samples.BITWARDEN_CSV.encode(), samples.ONEPASSWORD_CSV.encode(),
                 samples.KEEPASSXC_CSV.encode(),
                 samples.onepux([samples.ONEPUX_ITEM])):
        parsed = importers.parse(data)
        values = [i.values["totp"] for i in parsed.items if "totp" in i.values]
        assert values, parsed.format
        for value in values:
            assert totp.parse(value).secret, (parsed.format, value)
            assert "totp" in next(i.hidden for i in parsed.items if "totp" in i.values)


def test_keepass_native_and_keetray_totp_become_otpauth_uris(tmp_path: Path) -> None:
    from pykeepass import create_database

    path = tmp_path / "otp.kdbx"
    kp = create_database(str(path), password="pw")
    native = kp.add_entry(kp.root_group, "Native", "u", "p")
    native.set_custom_property("TimeOtp-Secret-Base32", SECRET, protect=True)
    native.set_custom_property("TimeOtp-Length", "8")
    native.set_custom_property("TimeOtp-Algorithm", "HMAC-SHA-256")
    tray = kp.add_entry(kp.root_group, "Tray", "u", "p")
    tray.set_custom_property("TOTP Seed", SECRET.lower(), protect=True)
    tray.set_custom_property("TOTP Settings", "60;7")
    kp.save()
    parsed = importers.parse(path.read_bytes(), source_password="pw")  # one KDF run
    items = {i.title: i.values for i in parsed.items}
    native_totp = totp.parse(items["Native"]["totp"])
    assert (native_totp.digits, native_totp.algorithm, native_totp.period) == (8, "SHA256", 30)
    tray_totp = totp.parse(items["Tray"]["totp"])
    assert (tray_totp.digits, tray_totp.period) == (7, 60)
    assert not any(k.startswith(("TimeOtp", "TOTP ")) for v in items.values() for k in v)


def test_keeotp_strings_make_codes() -> None:
    t = totp.parse(f"key={SECRET}&size=8&step=60")
    assert (t.digits, t.period) == (8, 60) and len(t.code(0)) == 8
    assert totp.parse(f"{SECRET}&size=8&step=60") == t  # as Bitwarden exports it
