"""Benchmark of the membership rule: computing members from N MEMBER records, cold and warm.

Builds N member records (devices paired by the creator, each re-written several times, and
a few revocations with acknowledgements) in memory, then times ``compute`` with empty
caches (every signature and certificate checked: what a daemon pays once) and warm (what
every later computation pays until a MEMBER record arrives, when it is not cached at all).
Issue 13 measured 14.4 s for 600 member records before (quadratic); target: linear, well
under a second for 1000.

    .venv/bin/python bench/membership.py [--records 600 1000 4000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchlib import machine, record  # noqa: E402

from wifisync.model.identity import DeviceIdentity, public_key_of_certificate  # noqa: E402
from wifisync.model.membership import MembershipMemo, compute, new_vault_id  # noqa: E402
from wifisync.model.records import (  # noqa: E402
    Kind,
    Membership,
    Record,
    RecordHeader,
    member_item_id,
    sign_record,
)

TARGET_S = 1.0
DEVICES = 50


def build(n: int, devices: list[DeviceIdentity], root: DeviceIdentity, vault: bytes
          ) -> list[Record]:
    """``n`` MEMBER records: the root's own, grants re-written round robin, 2 revocations."""
    records: list[Record] = []
    seq = 1

    def sign(author: DeviceIdentity, subject: DeviceIdentity, body: Membership) -> None:
        nonlocal seq
        header = RecordHeader(vault, member_item_id(subject.device_id), Kind.MEMBER,
                              author.device_id, seq, {author.device_id: seq}, seq)
        records.append(sign_record(author, header, body.encode()))
        seq += 1

    sign(root, root, Membership(root.cert_der, "root"))
    i = 0
    while len(records) < n - 2:
        d = devices[i % len(devices)]
        sign(root, d, Membership(d.cert_der, f"device {i}"))
        i += 1
    for victim in devices[:2]:
        sign(root, victim, Membership(victim.cert_der, "gone", revoked=True,
                                      held={root.device_id: seq}))
    return records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[600, 1000, 4000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(machine())
    root = DeviceIdentity.generate()
    devices = [DeviceIdentity.generate() for _ in range(DEVICES)]
    vault = new_vault_id(root.device_id)
    for n in args.records:
        records = build(n, devices, root, vault)
        cold: list[float] = []
        warm: list[float] = []
        for _ in range(args.repeat):
            memo = MembershipMemo()
            public_key_of_certificate.cache_clear()
            t = time.perf_counter()
            view = compute(vault, records, memo)
            cold.append(time.perf_counter() - t)
            t = time.perf_counter()
            compute(vault, records, memo)
            warm.append(time.perf_counter() - t)
        assert len(view.current()) == 1 + DEVICES - 2
        for name, samples in (("cold (checks every signature)", cold),
                              ("warm (signatures remembered)", warm)):
            record(f"membership of {n} member records, {name}",
                   [s * 1000 for s in samples], "ms", TARGET_S * 1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
