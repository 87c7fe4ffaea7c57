"""The SQL blocks of docs/auditor-cookbook.md, for the tests that run them."""

from __future__ import annotations

import re
from pathlib import Path

COOKBOOK = Path(__file__).resolve().parent.parent / "docs" / "auditor-cookbook.md"


def cookbook_queries() -> list[str]:
    return [q.strip() for q in re.findall(r"```sql\n(.*?)```", COOKBOOK.read_text(), re.S)]
