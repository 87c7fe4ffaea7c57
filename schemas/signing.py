"""Window signatures: Ed25519, by the site, over the exact bytes that travel.

A site signs with its private key (made on the site by ``bridgeledger agent
keygen``; it never leaves the node). The consortium config lists only public
keys, so the centre and every auditor can check a site's windows and none of
them can make one.

Signed message format (any language can check it, nothing is re-serialised):

- the agent serialises the window as a JSON object that includes ``key_id``
  and no ``signature``: the *signed bytes* B, ending in ``}``;
- the message is B without its final ``}``, then
  ``,"signature":"<128 lowercase hex digits>"}``;
- to check: the message must end with that member; B is everything before
  it plus ``}``; the signature is Ed25519 (RFC 8032) over B with the public
  key the config lists for ``key_id`` at the window's site.

Key files hold the 32-byte Ed25519 seed as 64 hex digits, mode 600.
"""

from __future__ import annotations

import hashlib
import re
import stat
from pathlib import Path

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

__all__ = [
    "SigningKey", "VerifyKey", "demo_key", "new_key", "public_key_hex", "read_secret_file", "read_signing_key",
    "sign_window", "split_signature", "verifier", "verify_window",
]

_SUFFIX = re.compile(rb',"signature":"([0-9a-f]{128})"\}\Z')
PUBLIC_KEY_PATTERN = r"^[0-9a-f]{64}$"


def sign_window(body: bytes, key: SigningKey) -> bytes:
    """The message for a window serialised as ``body`` (a JSON object with its key_id)."""
    if not body.endswith(b"}") or b'"signature"' in body:
        raise ValueError("sign a JSON object without a signature member")
    signature = key.sign(body).signature.hex().encode()
    return body[:-1] + b',"signature":"' + signature + b'"}'


def split_signature(raw: bytes) -> tuple[bytes, bytes] | None:
    """(signed bytes, signature) of a signed message, or None if it carries no
    signature in the trailing position."""
    m = _SUFFIX.search(raw)
    if m is None:
        return None
    return raw[:m.start()] + b"}", bytes.fromhex(m.group(1).decode())


def verifier(public_key_hex_: str) -> VerifyKey:
    return VerifyKey(bytes.fromhex(public_key_hex_))


def verify_window(raw: bytes, key: VerifyKey) -> bool:
    """True if ``raw`` is a message signed by ``key`` (compared as bytes, never re-serialised)."""
    parts = split_signature(raw)
    if parts is None:
        return False
    try:
        key.verify(parts[0], parts[1])
    except BadSignatureError:
        return False
    return True


def new_key() -> SigningKey:
    return SigningKey.generate()


def public_key_hex(key: SigningKey) -> str:
    return bytes(key.verify_key).hex()


def demo_key(site_id: str) -> tuple[str, SigningKey]:
    """(key id, key) of a site in the demo and the tests: derived from the site's
    name, so *public*. A production config never lists these keys; the worker
    warns at start about any site that does."""
    seed = hashlib.sha256(f"bridgeledger public demo key for {site_id}".encode()).digest()
    return f"{site_id}-demo", SigningKey(seed)


def read_secret_file(path: Path, what: str = "secret") -> bytes:
    """A secret file (key, password): readable by its owner only, not empty.
    Raises ValueError naming the file and the fix."""
    try:
        st = path.stat()
        data = path.read_bytes().strip()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read {what}: {exc.strerror}") from exc
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"{path}: {what} is readable by group or others (mode {stat.S_IMODE(st.st_mode):o}); "
                         f"run: chmod 600 {path}")
    if not data:
        raise ValueError(f"{path}: {what} file is empty")
    return data


def read_signing_key(path: Path) -> SigningKey:
    """A site's private key file (64 hex digits, mode 600). Raises ValueError."""
    data = read_secret_file(path, "signing key")
    try:
        seed = bytes.fromhex(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: signing key must be 64 hex digits (bridgeledger agent keygen)") from exc
    if len(seed) != 32:
        raise ValueError(f"{path}: signing key must be 64 hex digits, found {len(data)} characters")
    return SigningKey(seed)
