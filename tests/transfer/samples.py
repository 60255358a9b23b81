"""Constructed export files of every format (after the reference's examples), built in code."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

MSECURE_B = (
    "mSecure6 CSV export file\n"
    "Home Router|1482213,Login,Network,Admin UI on LAN only\\nrotated 2023,"
    "Website|2|http://192.168.1.1,Username|7|admin,Password|8|c0rrect|horse,\n"
    "Travel Visa|55012,Credit Card,Finance,,Card Number|12|4111 1111 1111 1111,"
    "Expiration Date|11|09/2029,Security Code|9|321,Name on Card|0|Ada Lovelace,PIN|9|0000,"
    "Issuing Bank|0|Example Bank,Phone Number|4|+1 555 0100,"
    '"Billing Address|0|1 Main St, Springfield",\n'
    'Door codes|9001,Secure Note,,"Garage 1234\\nShed 5678",\n'
)

#: Layout A (mSecure 3.5 on a Mac): 0x0B line breaks, a trailing comma, no labels.
MSECURE_A_MAC = (
    "mSecure CSV export file\n"
    "Personal,Web Logins,Home Router,line one\x0bline two,http://192.168.1.1,admin,s3cret,\n"
    "Money,Credit Cards,Visa,,4111111111111111,09/2029,Ada Lovelace,0000,Example Bank,321,\n"
    "Stuff,Vehicle Info,Car,,AB-123,VIN999,,,\n"
)

BITWARDEN_JSON: dict[str, Any] = {
    "encrypted": False,
    "folders": [{"id": "f1", "name": "Network"}, {"id": "f2", "name": "Emails/WS"}],
    "items": [
        {"id": "i1", "organizationId": None, "folderId": "f1", "type": 1, "reprompt": 0,
         "name": "Home Router", "notes": "line 1\nline 2", "favorite": True,
         "fields": [{"name": "PIN", "value": "1234", "type": 1, "linkedId": None},
                    {"name": "Floor", "value": "2", "type": 0, "linkedId": None},
                    {"name": "Admin", "value": "true", "type": 2, "linkedId": None},
                    {"name": "Login as", "value": None, "type": 3, "linkedId": 100}],
         "login": {"uris": [{"match": None, "uri": "http://192.168.1.1"},
                            {"match": 3, "uri": "https://router.local"}],
                   "username": "admin", "password": "s3cret", "totp": None,
                   "fido2Credentials": []},
         "passwordHistory": [{"lastUsedDate": "2024-01-02T03:04:05.000Z", "password": "old"}],
         "revisionDate": "2024-05-01T10:00:00.000Z", "creationDate": "2023-01-01T09:00:00.000Z",
         "deletedDate": None, "collectionIds": None},
        {"id": "i2", "organizationId": None, "folderId": None, "type": 2, "reprompt": 0,
         "name": "Door codes", "notes": "Garage 1234\r\nShed 5678", "favorite": False,
         "secureNote": {"type": 0}, "collectionIds": None},
        {"id": "i3", "organizationId": None, "folderId": "f2", "type": 3, "reprompt": 1,
         "name": "Travel Visa", "notes": None, "favorite": False,
         "card": {"cardholderName": "Ada Lovelace", "brand": "Visa",
                  "number": "4111111111111111", "expMonth": "9", "expYear": "2029",
                  "code": "321"}, "collectionIds": None},
        {"id": "i4", "organizationId": None, "folderId": None, "type": 4, "reprompt": 0,
         "name": "Me", "notes": None, "favorite": False,
         "identity": {"title": "Dr", "firstName": "Ada", "middleName": None,
                      "lastName": "Lovelace", "address1": "1 Main St", "city": "Springfield",
                      "email": "ada@example.org", "ssn": "123-45-6789",
                      "passportNumber": None},
         "collectionIds": None},
    ],
}

BITWARDEN_CSV = (
    "folder,favorite,type,name,notes,fields,reprompt,login_uri,login_username,login_password,"
    "login_totp\n"
    'Network,1,login,Home Router,"line 1\nline 2","PIN: 1234\nRecovery: a:b",0,'
    '"http://192.168.1.1,https://router.local",admin,s3cret,JBSWY3DPEHPK3PXP\n'
    ",,note,Door codes,Garage 1234,,0,,,,\n"
)

ONEPASSWORD_CSV = (
    "Title,Url,Username,Password,OTPAuth,Favorite,Archived,Tags,Notes\n"
    '"Home Router","http://192.168.1.1","admin","s3cret",'
    '"otpauth://totp/r?secret=JBSWY3DPEHPK3PXP","true","false","Network","line 1\nline 2"\n'
)

ONEPUX_ITEM: dict[str, Any] = {
    "uuid": "abc", "favIndex": 1, "createdAt": 1700000000, "updatedAt": 1700000100,
    "state": "active", "categoryUuid": "001",
    "overview": {"title": "Home Router", "url": "http://192.168.1.1",
                 "urls": [{"label": "", "url": "http://192.168.1.1"},
                          {"label": "lan", "url": "https://router.local"}],
                 "tags": ["Network/Home"]},
    "details": {
        "loginFields": [
            {"id": "u", "name": "username", "value": "admin", "fieldType": "T",
             "designation": "username"},
            {"id": "p", "name": "password", "value": "s3cret", "fieldType": "P",
             "designation": "password"},
            {"id": "x", "name": "remember", "value": {"checked": True}, "fieldType": "C"}],
        "notesPlain": "line 1\nline 2",
        "passwordHistory": [{"value": "old", "time": 1690000000}],
        "sections": [{"title": "Extra", "name": "s1", "fields": [
            {"title": "PIN", "id": "pin1", "value": {"concealed": "1234"}, "guarded": True,
             "multiline": False},
            {"title": "Floor", "id": "f", "value": {"string": "2"}},
            {"title": "one-time", "id": "TOTP_1", "value": {"totp": "JBSWY3DPEHPK3PXP"}}]}]},
}

ONEPUX_CARD: dict[str, Any] = {
    "uuid": "card1", "categoryUuid": "002", "state": "archived",
    "overview": {"title": "Travel Visa", "tags": []},
    "details": {"sections": [{"title": "", "name": "", "fields": [
        {"title": "number", "id": "ccnum", "value": {"creditCardNumber": "4111111111111111"}},
        {"title": "expiry", "id": "expiry", "value": {"monthYear": 202909}},
        {"title": "cvv", "id": "cvv", "value": {"concealed": "321"}},
        {"title": "cardholder", "id": "cardholder", "value": {"string": "Ada Lovelace"}}]}]},
}


def onepux(items: list[Any], vault: str = "Personal", files: dict[str, bytes] | None = None
           ) -> bytes:
    """A 1PUX zip holding one account with one vault of ``items``."""
    data = {"accounts": [{"attrs": {"accountName": "Ada", "uuid": "A1"},
                          "vaults": [{"attrs": {"uuid": "V1", "name": vault},
                                      "items": items}]}]}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("export.attributes", json.dumps({"version": 3, "createdAt": 1700000000}))
        z.writestr("export.data", json.dumps(data))
        for name, content in (files or {}).items():
            z.writestr(f"files/{name}", content)
    return buf.getvalue()


KEEPASSXC_CSV = (
    '"Group","Title","Username","Password","URL","Notes","TOTP","Icon","Last Modified",'
    '"Created"\n'
    '"Root/Network","Home Router","admin","s3c""ret","http://192.168.1.1","line 1\n'
    'line 2","otpauth://totp/Home%20Router:admin?secret=JBSWY3DPEHPK3PXP&period=30&digits=6'
    '&issuer=Home%20Router","0","2024-05-01T10:00:00Z","2023-01-01T09:00:00Z"\n'
)

KDBX_PASSWORD = "source-pass"


def cheap_kdf(kp: Any) -> None:
    """Argon2 at 1 pass over 8 MiB: the same format, opened in milliseconds."""
    kdf = kp.kdbx.header.value.dynamic_header.kdf_parameters.data.dict
    kdf["I"].value, kdf["M"].value = 1, 8 * 1024 * 1024


def kdbx(path: Path, password: str = KDBX_PASSWORD, entries: int = 0) -> Path:
    """A KeePass file with groups, custom (some protected) fields, a TOTP, an attachment,
    a field reference and an entry in the recycle bin; plus ``entries`` plain ones."""
    from pykeepass import create_database

    kp = create_database(str(path), password=password)
    cheap_kdf(kp)
    network = kp.add_group(kp.root_group, "Network")
    home = kp.add_group(network, "Home")
    router = kp.add_entry(home, "Home Router", "admin", "s3cret", url="http://192.168.1.1",
                          notes="line 1\r\nline 2", tags=["infra", "lan"],
                          otp="otpauth://totp/r?secret=JBSWY3DPEHPK3PXP")
    router.set_custom_property("PIN", "1234", protect=True)
    router.set_custom_property("Floor", "2")
    router.set_custom_property("KP2A_URL_1", "https://router.local")
    binary = kp.add_binary(b"config-backup")
    router.add_attachment(binary, "router.cfg")
    kp.add_entry(kp.root_group, "Router alias", "{REF:U@I:" + router.uuid.hex.upper() + "}",
                 "{REF:P@I:" + router.uuid.hex.upper() + "}")
    kp.add_entry(kp.root_group, "Door codes", "", "", notes="Garage 1234")
    trash = kp.add_entry(kp.root_group, "Old thing", "x", "y")
    kp.trash_entry(trash)
    for i in range(entries):
        kp.add_entry(kp.root_group, f"entry {i}", f"user{i}", f"pass-{i}",
                     url=f"https://site{i}.example", notes=f"note {i}", force_creation=True)
    kp.save()
    return path
