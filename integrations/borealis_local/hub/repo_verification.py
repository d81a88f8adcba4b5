"""Verifying a whole downloaded repo against its signed manifest (`borealis verify --repo`).

The repo's own `signing/` files, as downloaded with it, are checked as `signing` says;
only then is the manifest worth comparing with: every file it lists must be here with
the same SHA-256, and every file here (outside `signing/` and the hub's hidden files)
must be listed. Missing, changed and extra files are named. Hashes of unchanged files
come from the record of verified files, as for one file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from borealis_local.catalog import parse_name
from borealis_local.errors import InvalidRequestError, ModelNotFoundError, UnknownModelError
from borealis_local.hub import record
from borealis_local.hub.signing import SIGNING_DIR, SignatureCheck, SigningFiles
from borealis_local.hub.signing import failed as failed_check
from borealis_local.hub.verification import checked_and_pinned, file_sha256


@dataclass(frozen=True)
class RepoVerification:
    directory: Path
    signature: SignatureCheck
    matched: tuple[str, ...] = ()
    changed: tuple[tuple[str, str, str], ...] = ()
    """(file, the manifest's SHA-256, the file's)."""
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()

    @property
    def verified(self) -> bool:
        return self.signature.verified and not (self.changed or self.missing or self.extra)

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory), "verified": self.verified,
            "signature": self.signature.to_dict(), "matched": list(self.matched),
            "changed": [{"file": f, "listed": a, "actual": b} for f, a, b in self.changed],
            "missing": list(self.missing), "extra": list(self.extra),
        }  # fmt: skip


def verify_repo(
    target: str | os.PathLike, *, trust_root: str | None = None, rehash: bool = False
) -> RepoVerification:
    """Verify a downloaded repo: a folder, or a catalog model (`borealis-open-4b`) whose
    repo is in the Hugging Face cache."""
    directory, repo = _repo_directory(target)
    present = set(_files(directory))
    files = SigningFiles.find(present)
    if files is None:
        return RepoVerification(directory, SignatureCheck(
            "unsigned", f"unsigned: {directory} has no {SIGNING_DIR} folder, so there is no "
            "signed manifest to check the files against"))
    if files.missing:
        return RepoVerification(directory, failed_check(
            "files", f"{SIGNING_DIR} has {', '.join(files.present)}, but no "
            f"{' and no '.join(files.missing)}"))
    blobs = [(directory / name).read_bytes()
             for name in (files.manifest, files.signature, *files.chain)]
    manifest, signature, *chain = blobs
    check = checked_and_pinned(manifest, signature, chain, trust_root, repo)
    if not check.verified:
        return RepoVerification(directory, check)  # an unproven manifest proves nothing
    listed = check.manifest
    matched, changed = [], []
    for name, expected in sorted(listed.items()):
        if name not in present:
            continue
        actual = _sha256(directory / name, rehash)
        if actual == expected:
            matched.append(name)
        else:
            changed.append((name, expected, actual))
    missing = sorted(set(listed) - set(present))
    extra = sorted(name for name in present if name not in listed
                   and not name.startswith(SIGNING_DIR))
    return RepoVerification(directory, check, tuple(matched), tuple(changed), tuple(missing),
                            tuple(extra))


def _repo_directory(target: str | os.PathLike) -> tuple[Path, str]:
    path = Path(target).expanduser()
    if path.is_dir():
        return path, path.name
    try:
        model, _ = parse_name(os.fspath(target))
    except UnknownModelError:
        raise InvalidRequestError(
            f"{target}: give a downloaded repo's folder or a model such as borealis-open-4b"
        ) from None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        snapshot = snapshot_download(model.gguf_repo, local_files_only=True)
    except LocalEntryNotFoundError:
        raise ModelNotFoundError(
            f"{model.gguf_repo} is not in the Hugging Face cache: download it with "
            f"`hf download {model.gguf_repo}` (the whole repo), then verify again"
        ) from None
    return Path(snapshot), model.gguf_repo


def _files(directory: Path) -> list[str]:
    """The repo's files, relative, as the manifest names them (hidden ones left out:
    the hub's .gitattributes and a local download's .cache/)."""
    names = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if path.is_file() and not any(part.startswith(".") for part in relative.split("/")):
            names.append(relative)
    return names


def _sha256(path: Path, rehash: bool) -> str:
    entry = record.stored(path)
    if not rehash and record.unchanged(entry, path):
        return entry["sha256"]
    actual = file_sha256(path)
    record.remember(path, actual, *(record.published(entry) if entry else (None, None)))
    return actual
