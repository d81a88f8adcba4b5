"""The record of verified files: a file's SHA-256, and the one published for it,
remembered so that the next verify of an unchanged file does not read 7 GB again.

Kept in $XDG_CACHE_HOME/borealis-local/verified.json, keyed by the file's resolved
path, under its size, mtime, ctime and inode: a file whose four are unchanged is taken
to be unchanged. A change that keeps all four (bit rot on the disk) is only found by
rehashing (`verify(..., rehash=True)`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from borealis_local.hub.state import load_state, now, save_state

VERIFIED_FILE = "verified.json"


def _stat_key(path: Path) -> dict[str, int]:
    # ctime and inode change on any write or replacement, and cannot be set back by hand.
    status = path.stat()
    return {
        "size": status.st_size, "mtime_ns": status.st_mtime_ns,
        "ctime_ns": status.st_ctime_ns, "inode": status.st_ino,
    }  # fmt: skip


def recorded_paths() -> list[Path]:
    """Every file the record knows, whether or not it is still there."""
    return [Path(name) for name in load_state(VERIFIED_FILE)]


def stored(path: Path) -> dict[str, Any] | None:
    """The record's entry for `path`, whatever the file's state now."""
    entry = load_state(VERIFIED_FILE).get(str(path.resolve()))
    return entry if isinstance(entry, dict) and "sha256" in entry else None


def unchanged(entry: dict[str, Any] | None, path: Path) -> bool:
    """Whether the file is as it was when `entry` recorded its hash."""
    return entry is not None and entry.get("stat") == _stat_key(path)


def published(entry: dict[str, Any]) -> tuple[str | None, str | None]:
    """(the published hash, where it came from) as `entry` recorded them."""
    return entry.get("expected_sha256"), entry.get("source")


def remember(path: Path, sha256: str, expected: str | None, source: str | None) -> None:
    """Remember `path`'s hash and the published one; files gone since are forgotten."""
    records = {
        name: entry for name, entry in load_state(VERIFIED_FILE).items() if Path(name).exists()
    }
    records[str(path.resolve())] = {
        "stat": _stat_key(path), "sha256": sha256, "expected_sha256": expected,
        "source": source, "recorded_at": now(),
    }  # fmt: skip
    save_state(VERIFIED_FILE, records)


RecordedState = Literal["verified", "hash mismatch", "not verified"]


def recorded_state(path: Path) -> RecordedState:
    """"verified", "hash mismatch" or "not verified", from the record alone."""
    entry = stored(path)
    if not unchanged(entry, path) or not entry.get("expected_sha256"):
        return "not verified"
    return "verified" if entry["sha256"] == entry["expected_sha256"] else "hash mismatch"


# -- the trusted signing root ------------------------------------------------------------

TRUST_FILE = "trusted-root.json"


def trusted_root() -> dict[str, Any] | None:
    """The pinned root of the National Library's signing chain: {"sha256", "how",
    "repo", "pinned_at"}, or None before the first verified signature."""
    entry = load_state(TRUST_FILE)
    return entry if isinstance(entry.get("sha256"), str) else None


def pin_root(sha256: str, how: str, repo: str) -> None:
    """Trust this root from now on (first use, or --trust-root)."""
    save_state(TRUST_FILE, {"sha256": sha256, "how": how, "repo": repo, "pinned_at": now()})
