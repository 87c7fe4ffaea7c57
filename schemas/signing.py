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
from collections.abc import Mapping
from typing import Any

__all__ = ["canonical_bytes", "sign_document", "verify_document"]


def canonical_bytes(doc: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_document(doc: dict[str, Any], key_id: str, key: bytes) -> dict[str, Any]:
    signed = {**doc, "key_id": key_id}
    signed["signature"] = hmac.new(key, canonical_bytes(signed), hashlib.sha256).hexdigest()
    return signed


def verify_document(doc: Mapping[str, Any], key: bytes) -> bool:
    sig = doc.get("signature")
    if not isinstance(sig, str):
        return False
    expected = hmac.new(key, canonical_bytes(doc), hashlib.sha256).hexdigest()
    return hmac.compare_digest(sig, expected)
