"""Small JSON files kept between runs in `paths.state_dir()` (~/.cache/borealis-local):
licence acceptances and the record of verified files. Losing one costs a question and
a re-hash, never a wrong answer, so a damaged file is read as empty."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

from borealis_local.paths import state_dir


def load_state(name: str) -> dict[str, Any]:
    try:
        data = json.loads((state_dir() / name).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):  # a damaged file is only forgotten state
        return {}
    return data if isinstance(data, dict) else {}


def save_state(name: str, data: dict[str, Any]) -> None:
    path = state_dir() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    temporary.replace(path)  # atomic: a reader never sees half a file


def now() -> str:
    """The time to record, in UTC to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")
