"""A lab node's discovery process: runs one DiscoveryManager and reports what it finds on stdout.

Run inside a lab namespace (``python -m tests.daemon.discovery_peer ...``).
Lines out: ``advertised``,
``found HOST PORT``, ``pairing HOST PORT``, ``error MESSAGE``. Lines in (member mode): ``pair
NAMEPLATE PORT``, ``withdraw``, ``show NAMEPLATE PORT`` / ``hide`` (the synchronous form),
``quit``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading

from wifisync.client.find import async_find_pairing
from wifisync.daemon import discovery
from wifisync.daemon.discovery import DiscoveryManager
from wifisync.errors import WifisyncError
from wifisync.net import mdns


def say(line: str) -> None:
    """One line on stdout, at once."""
    print(line, flush=True)


class SayAdvertised(logging.Handler):
    """Says ``advertised`` once the manager logs its member service as announced."""

    def __init__(self) -> None:
        super().__init__()
        self.said = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.said and str(record.msg).startswith("mdns: %s announced on"):
            self.said = True
            say("advertised")


async def member(args: argparse.Namespace) -> int:
    """Advertise, browse and obey stdin until told to quit or terminated."""
    manager = DiscoveryManager(
        interfaces=[args.iface],
        port=args.port,
        vault_id=bytes.fromhex(args.vault),
        instance=args.name,
        on_found=lambda host, port: say(f"found {host} {port}"),
    )
    logging.getLogger("wifisync.discovery").addHandler(SayAdvertised())
    await manager.async_start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    lines: asyncio.Queue[str] = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, "")

    # A daemon thread, not the default executor: a blocked read must not hold up the exit.
    threading.Thread(target=read_stdin, daemon=True).start()

    async def obey() -> None:
        while True:
            words = (await lines.get()).split()
            if not words or words[0] == "quit":
                stop.set()
                return
            if words[0] == "pair":
                await manager.async_advertise_pairing(words[1], int(words[2]))
                say("pairing-advertised")
            elif words[0] == "withdraw":
                await manager.async_withdraw_pairing()
                say("pairing-withdrawn")
            elif words[0] == "show":
                manager.show_pairing(words[1], int(words[2]))
            elif words[0] == "hide":
                manager.show_pairing(None, 0)

    commands = asyncio.create_task(obey())
    await stop.wait()
    commands.cancel()
    await manager.async_stop()
    say("stopped")
    return 0


async def find(args: argparse.Namespace) -> int:
    """Look for a pairing window once and report it."""
    try:
        host, port = await async_find_pairing(
            args.nameplate, interfaces=[args.iface], timeout=args.timeout
        )
    except WifisyncError as exc:
        say(f"error {exc}")
        return 1
    say(f"pairing {host} {port}")
    return 0


def main() -> int:
    """Parse the mode and run it."""
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    m = sub.add_parser("member")
    m.add_argument("--iface", required=True)
    m.add_argument("--port", type=int, required=True)
    m.add_argument("--vault", required=True)
    m.add_argument("--name", default="lab-node")
    m.add_argument("--window-seconds", type=float, help="shorten the tag window (rollover tests)")
    f = sub.add_parser("find")
    f.add_argument("--iface", required=True)
    f.add_argument("--nameplate", required=True)
    f.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    if getattr(args, "window_seconds", None):
        mdns.TAG_WINDOW_SECONDS = args.window_seconds
        discovery.RECHECK_SECONDS = args.window_seconds / 3
    logging.basicConfig(stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("wifisync").setLevel(logging.DEBUG)
    return asyncio.run(member(args) if args.mode == "member" else find(args))


if __name__ == "__main__":
    sys.exit(main())
