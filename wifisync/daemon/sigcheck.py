"""A signature helper's program and its frames: signed messages in, one flag byte each out.

:mod:`wifisync.daemon.sighelpers` runs this file as ``python -I -S sigcheck.py FOLDER...``:
isolated, without the site module, importing the standard library's ``struct`` and
libsodium's binding (PyNaCl) from the folders the daemon named, nothing of wifisync, and
holding one request at a time. It sees public keys, signatures and signed bytes, never a
secret. (A helper that imported the daemon's module, msgpack and a read-ahead thread
started at 15 MiB resident and reached 21 MiB during a 100k sync; this one stays near 10.)

A request is ``n``, the key's length and the number of claims (``>III``), the public key,
then per claim a record's length and where its signature starts (``>II``) and its bytes,
as the daemon decoded and validated it. The helper cuts the signature, the record's own
message and its tree proof out of them (:func:`claim_parts`), so the daemon, whose one
thread decodes and stores, copies nothing for it. The answer is ``n`` (``>I``) and one
byte per claim: 1 when the key signed the message, or (with a proof) the root of the record
tree the proof leads to from it: the rule of
:meth:`wifisync.model.records.Record.signed_message`, which a test holds this copy to.
"""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import Callable, Iterable, Iterator

TYPE_CHECKING = False  # importing typing would cost the helper 1 MiB
if TYPE_CHECKING:
    from typing import IO

_LENGTH = struct.Struct(">I")
_REQUEST = struct.Struct(">III")
_CLAIM = struct.Struct(">II")
MAX_FRAME = 64 * 1024 * 1024  # far above any batch; a longer frame means a broken stream
SIGNATURE_BYTES = 64
SIGNING_CONTEXT = b"wifisync/v1/record\x00"  # as in wifisync.model.records (tested)
_OWN_HEAD = SIGNING_CONTEXT + b"\x92"  # a record's own message: [header, body] of its array
_BIN8_HEAD = 2  # a signature and a proof each take a bin 8 value: its type and length
TREE_CONTEXT = b"wifisync/v1/record-tree\x00"  # as in wifisync.model.records (tested)
NODE_CONTEXT = b"wifisync/v1/tree-node\x00"
MAX_TREE_DEPTH = 5
PUBLIC_KEY_BYTES = 32  # libsodium reads this many bytes of the key whatever it is given
HELPER_NICENESS = 5  # the process that decodes and stores is the critical path: when the
# helpers and it share a core, it gets three quarters (initial sync of 100k: 4.4 s -> 3.9 s)


def check_all(public_key: bytes, claims: Iterable[tuple[bytes, bytes, bytes]]) -> bytes:
    """One byte per (signature, message, proof): 1 when ``public_key`` signed the message,
    or the root of the tree its proof leads to (each tree's signature is checked once).

    libsodium's ``crypto_sign_open``, as ``nacl.bindings`` calls it for the in-process
    checks (the same rule), through its cffi module alone: importing ``nacl.bindings``
    would cost the helper 3 MiB of bindings it never uses.
    """
    from nacl._sodium import ffi, lib  # here: the helper finds PyNaCl once its path is set

    lib.sodium_init()  # idempotent; picks the CPU's implementations, as nacl.bindings does
    digest = ffi.new("unsigned char[32]")

    def sha256(data: bytes) -> bytes:
        lib.crypto_hash_sha256(digest, data, len(data))
        return bytes(digest)

    nodes: dict[bytes, bytes] = {}  # a tree's records share their upper nodes: hash each once

    def node(pair: bytes) -> bytes:
        found = nodes.get(pair)
        if found is None:
            found = nodes[pair] = sha256(NODE_CONTEXT + pair)
        return found

    def opens(signature: bytes, message: bytes) -> int:
        signed = signature + message
        out = ffi.new("unsigned char[]", len(signed))
        return int(lib.crypto_sign_open(out, size, signed, len(signed), public_key) == 0)

    flags = bytearray()
    size = ffi.new("unsigned long long *")
    trees: dict[tuple[bytes, bytes], int] = {}
    for signature, message, proof in claims:
        ok = 0
        if len(signature) == SIGNATURE_BYTES and len(public_key) == PUBLIC_KEY_BYTES:
            if not proof:
                ok = opens(signature, message)
            elif (tree := tree_message(node, sha256(message), proof)) is not None:
                ok = trees.get((signature, tree), -1)
                if ok < 0:
                    ok = trees[(signature, tree)] = opens(signature, tree)
        flags.append(ok)
    return bytes(flags)


def tree_message(node: Callable[[bytes], bytes], leaf: bytes, proof: bytes) -> bytes | None:
    """The signed message of the tree ``proof`` leads to from ``leaf`` (``node`` hashes a
    pair of children with the node context); None when malformed."""
    if len(proof) < 2:
        return None
    depth, index = proof[0], proof[1]
    if not 1 <= depth <= MAX_TREE_DEPTH or index >= 1 << depth or len(proof) != 2 + 32 * depth:
        return None
    at = leaf
    for level in range(depth):
        sibling = proof[2 + 32 * level:34 + 32 * level]
        at = node(sibling + at if index >> level & 1 else at + sibling)
    return TREE_CONTEXT + proof[:1] + at


def claim_parts(record: bytes, signature_at: int) -> tuple[bytes, bytes, bytes]:
    """The signature, own message and tree proof of a record's bytes whose signature starts
    at ``signature_at`` (:class:`wifisync.model.records.Record` cuts them so); a claim out
    of shape gives parts that hold for nothing."""
    if not _BIN8_HEAD < signature_at <= len(record) - SIGNATURE_BYTES:
        return b"", b"", b""
    proof_at = signature_at + SIGNATURE_BYTES + _BIN8_HEAD
    return (record[signature_at:signature_at + SIGNATURE_BYTES],
            _OWN_HEAD + record[1:signature_at - _BIN8_HEAD], record[proof_at:])


def encode_request(n: int, public_key: bytes, claims: Iterable[tuple[bytes, int]]) -> bytes:
    """The request frame's payload for ``claims`` of (record, where its signature starts)."""
    parts = [b"", public_key]
    for record, signature_at in claims:
        parts += (_CLAIM.pack(len(record), signature_at), record)
    parts[0] = _REQUEST.pack(n, len(public_key), (len(parts) - 2) // 2)
    return b"".join(parts)


def decode_request(payload: bytes
                   ) -> tuple[int, bytes, Iterator[tuple[bytes, bytes, bytes]]]:
    """``n``, the key and the claims of a request, each as (signature, message, proof),
    read one by one; ValueError when out of shape."""
    n, key_len, count = _REQUEST.unpack_from(payload)
    key_end = _REQUEST.size + key_len
    if key_end > len(payload):
        raise ValueError("request shorter than its key")

    def claims() -> Iterator[tuple[bytes, bytes, bytes]]:
        at = key_end
        for _ in range(count):
            size, signature_at = _CLAIM.unpack_from(payload, at)
            at += _CLAIM.size
            end = at + size
            if end > len(payload):
                raise ValueError("request shorter than its claims")
            yield claim_parts(payload[at:end], signature_at)
            at = end
        if at != len(payload):
            raise ValueError("request longer than its claims")

    return n, payload[_REQUEST.size:key_end], claims()


def encode_answer(n: int, flags: bytes) -> bytes:
    """The answer frame's payload."""
    return _LENGTH.pack(n) + flags


def decode_answer(payload: bytes) -> tuple[int, bytes]:
    """``n`` and the flags of an answer; ValueError when out of shape."""
    if len(payload) < _LENGTH.size:
        raise ValueError("answer too short")
    return _LENGTH.unpack_from(payload)[0], payload[_LENGTH.size:]


def read_frame(stream: IO[bytes]) -> bytes | None:
    """One length-prefixed payload; None at the end of the stream (or a cut one)."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    if size > MAX_FRAME:
        raise ValueError("frame too large")
    body = stream.read(size)
    return body if len(body) == size else None


def write_frame(stream: IO[bytes], payload: bytes) -> None:
    """Write one length-prefixed payload and flush it (the payload is not copied again to
    prefix it: a request is about 0.9 MiB)."""
    stream.write(_LENGTH.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """Answer requests in order until the stream ends; a request out of shape ends it."""
    while (payload := read_frame(requests)) is not None:
        n, key, claims = decode_request(payload)
        write_frame(answers, encode_answer(n, check_all(key, claims)))


def _yield_to_the_daemon() -> None:
    """Lower this process's priority (see HELPER_NICENESS) where that is allowed."""
    try:
        os.nice(HELPER_NICENESS)
    except (OSError, AttributeError):  # not allowed, or no nice() here: the daemon's priority
        return


def main() -> None:
    """The helper process: PyNaCl's folders from argv, then serve stdin to stdout."""
    sys.path.extend(sys.argv[1:])
    _yield_to_the_daemon()
    serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
