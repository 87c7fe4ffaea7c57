"""Window signatures: HMAC-SHA256 with the site's key over canonical bytes.

Canonical bytes of a message = the JSON object without its ``signature``
field, serialised with sorted keys, no whitespace (``,`` and ``:``
separators) and UTF-8. ``key_id`` is inside the signed bytes, so it cannot be
swapped. Any language can reproduce this: parse, drop ``signature``, dump
canonically, HMAC-SHA256, hex.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["canonical_bytes", "read_secret_file", "read_secret_key", "sign_document", "verify_document"]

MIN_KEY_BYTES = 32


def canonical_bytes(doc: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_document(doc: dict[str, Any], key_id: str, key: bytes) -> dict[str, Any]:
    signed = {**doc, "key_id": key_id}
    signed["signature"] = hmac.new(key, canonical_bytes(signed), hashlib.sha256).hexdigest()
    return signed


def verify_document(doc: Mapping[str, Any], key: bytes) -> bool:
    sig = doc.get("signature")
    if not isinstance(sig, str) or not sig.isascii():
        return False
    try:
        expected = hmac.new(key, canonical_bytes(doc), hashlib.sha256).hexdigest()
    except (UnicodeEncodeError, TypeError, ValueError):  # content no canonical form exists for
        return False
    return hmac.compare_digest(sig.encode(), expected.encode())


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


def read_secret_key(path: Path) -> bytes:
    """A key file: at least 32 bytes, readable by its owner only. Raises ValueError."""
    data = read_secret_file(path, "key")
    if len(data) < MIN_KEY_BYTES:
        raise ValueError(f"{path}: key is shorter than {MIN_KEY_BYTES} bytes")
    return data
