"""Where borealis-local keeps its own files on this machine: one place, one spelling."""

from __future__ import annotations

import os
from pathlib import Path

STATE_DIR_NAME = "borealis-local"


def state_dir() -> Path:
    """`$XDG_CACHE_HOME/borealis-local` (~/.cache/borealis-local): licence acceptances,
    the verified-file record, synthetic models and build caches."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / STATE_DIR_NAME
