"""The core's signature check (native/src/verify.rs) gives libsodium's verdicts.

The stream checks signatures in the compiled core; the audit re-checks the
stored windows with PyNaCl (libsodium, schemas/signing.py ``verify_window``).
If the two disagreed on any message, a site could send a window the stream
books and the audit calls forged, or the reverse. So: the same verdict on
arbitrary mutations of signed messages, with the right key, another key and
keys that are no key; and on signatures only the key's holder can make that
plain RFC 8032 arithmetic accepts but libsodium refuses: a non-canonical S, a
small-order R, and an R with a torsion component (the cofactored equation
holds, the cofactorless one does not).
"""

from __future__ import annotations

import hashlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.signing import demo_key, sign_window, verify_window
from streams.core import verify_signed as core_verify
from tests.builders import OTHER_KEY, window, wire

KEY_ID, KEY = demo_key("kr-daejeon")
PUBLIC = bytes(KEY.verify_key)
GOOD = wire(window(seq=11))

# edwards25519: the field prime, the group order
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
# not a point (no x for this y), and a non-canonical encoding (y = p + 1, i.e. y = 1: the identity)
NOT_A_POINT = (2).to_bytes(32, "little")
NON_CANONICAL = (P + 1).to_bytes(32, "little")
KEYS = [PUBLIC, bytes(OTHER_KEY.verify_key), NOT_A_POINT, NON_CANONICAL, bytes(32), b"\xff" * 32]


def nacl(raw: bytes, public: bytes) -> bool:
    from nacl.signing import VerifyKey

    return verify_window(raw, VerifyKey(public))


def agree(items: list[tuple[bytes, bytes]]) -> list[bool]:
    expected = [nacl(raw, key) for raw, key in items]
    for threads in (1, 3):
        assert core_verify(items, threads) == expected
    return expected


def test_a_signed_window_verifies_and_only_with_its_key() -> None:
    assert agree([(GOOD, k) for k in KEYS]) == [True, False, False, False, False, False]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A signed message with bytes changed, inserted, removed or cut, often in its signature member."""
    raw = bytearray(GOOD)
    for _ in range(draw(st.integers(1, 4))):
        near_end = draw(st.booleans())
        low = max(0, len(raw) - 160) if near_end else 0
        i = draw(st.integers(low, max(low, len(raw) - 1)))
        op = draw(st.sampled_from(["set", "insert", "delete", "cut"]))
        byte = draw(st.sampled_from([*b'0af"}, \\\n', *range(256)]))
        if op == "set" and raw:
            raw[i] = byte
        elif op == "insert":
            raw.insert(i, byte)
        elif op == "delete" and raw:
            del raw[i]
        elif op == "cut":
            del raw[i:]
    return bytes(raw)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.one_of(mutated(), st.binary(max_size=300)), st.sampled_from(KEYS)), max_size=8))
def test_the_core_and_libsodium_agree_on_mutated_messages(items: list[tuple[bytes, bytes]]) -> None:
    agree(items)


def test_uppercase_hex_and_a_trailing_newline_are_refused_by_both() -> None:
    head, _, sig = GOOD.rpartition(b'"signature":"')
    upper = head + b'"signature":"' + sig[:-2].upper() + b'"}'
    assert agree([(upper, PUBLIC), (GOOD + b"\n", PUBLIC), (GOOD, PUBLIC)]) == [False, False, True]


# -- signatures the key holder can make that libsodium refuses ----------------------------------------
def _scalars(message: bytes) -> tuple[int, int]:
    """(secret scalar a, the deterministic nonce r) of KEY for ``message`` (RFC 8032)."""
    h = hashlib.sha512(bytes(KEY)).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    r = int.from_bytes(hashlib.sha512(h[32:] + message).digest(), "little") % L
    return a, r


def _k(r_bytes: bytes, message: bytes) -> int:
    return int.from_bytes(hashlib.sha512(r_bytes + PUBLIC + message).digest(), "little") % L


def _message(body: bytes, r_bytes: bytes, s: int) -> bytes:
    sig = r_bytes + s.to_bytes(32, "little")
    return body[:-1] + b',"signature":"' + sig.hex().encode() + b'"}'


def _body() -> bytes:
    return json.dumps({**window(seq=12), "key_id": KEY_ID}, separators=(",", ":")).encode()


def test_a_non_canonical_s_is_refused_by_both() -> None:
    body = _body()
    raw = sign_window(body, KEY)
    sig = bytes.fromhex(json.loads(raw)["signature"])
    s = int.from_bytes(sig[32:], "little")
    assert s + L < 2**256
    assert agree([(raw, PUBLIC), (_message(body, sig[:32], s + L), PUBLIC)]) == [True, False]


def test_a_small_order_r_is_refused_by_both() -> None:
    # r = 0: R is the identity, and S = k·a satisfies [S]B = R + [k]A, the plain equation
    body = _body()
    a, _ = _scalars(body)
    identity = (1).to_bytes(32, "little")
    raw = _message(body, identity, _k(identity, body) * a % L)
    assert agree([(raw, PUBLIC)]) == [False]


def test_an_r_with_a_torsion_component_is_refused_by_both() -> None:
    # R' = R + T with T = (0, -1) of order 2, i.e. (-x, -y); S' = r + k'·a. Then
    # [8][S']B = [8]R' + [8][k']A holds (8T = 0), [S']B = R' + [k']A does not.
    body = _body()
    a, r = _scalars(body)
    honest = bytes.fromhex(json.loads(sign_window(body, KEY))["signature"])
    y = int.from_bytes(honest[:32], "little") & ((1 << 255) - 1)
    x_sign = honest[31] >> 7
    r_twisted = ((P - y) % P | ((x_sign ^ 1) << 255)).to_bytes(32, "little")
    raw = _message(body, r_twisted, (r + _k(r_twisted, body) * a) % L)
    honest_raw = _message(body, honest[:32], (r + _k(honest[:32], body) * a) % L)
    assert agree([(honest_raw, PUBLIC), (raw, PUBLIC)]) == [True, False]


def test_the_checks_cpu_is_counted_on_every_thread_that_ran_them() -> None:
    """verify_cpu_seconds_total (streams/worker.py) is the CoreVerifier's ``cpu_seconds``: with
    three threads it is the CPU of all three, about what one thread takes for the same batch,
    not the calling thread's third of it."""
    from streams.core import verify_signed_cpu
    from streams.verifier import CoreVerifier

    items = [(GOOD, PUBLIC)] * 600 + [(GOOD, bytes(OTHER_KEY.verify_key))] * 300
    cpu = {}
    for threads in (1, 3):
        verifier = CoreVerifier(threads)
        try:
            verifier.start()
            runs = []
            for _ in range(3):
                before = verifier.cpu_seconds
                assert verifier.submit(items)() == [True] * 600 + [False] * 300
                runs.append(verifier.cpu_seconds - before)
        finally:
            verifier.close()
        cpu[threads] = min(runs)
        verdicts, seconds = verify_signed_cpu(items, threads)
        assert verdicts == [True] * 600 + [False] * 300 and seconds > 0
    assert cpu[1] > 0.01  # 900 checks at tens of µs each
    assert cpu[3] > 0.6 * cpu[1], cpu
