"""Downloading a Borealis GGUF from the Hugging Face hub, resuming a broken download;
for 4b, 12b and 27b, their vision projector (mmproj GGUF) too, the same way.

Downloads go through `huggingface_hub` and keep its conventions: its cache (HF_HOME,
HF_HUB_CACHE), its token, HF_ENDPOINT, its progress bars, and HF_HUB_OFFLINE=1 (the
cache only, no request at all). Every request has a timeout (HF_HUB_ETAG_TIMEOUT and
HF_HUB_DOWNLOAD_TIMEOUT, 10 s by default), so a dead network fails fast and the file
already on disk stands in when it can.

Resuming. huggingface_hub 2.x writes each download to a temporary file unique to the
process and deletes it when the download fails (its PR #4228); it retries a broken
connection a few times within one run, but a 7 GB download stopped at 90 % (Ctrl-C, a
closed laptop, a network gone for longer than the retries) starts again from zero. So
`pull` downloads with the library's own `http_get` into a partial file of its own, named
for the hub's ETag and kept where the file will live (the cache's blobs/ folder, or
--local-dir), and asks for the rest with a Range request next time. The finished file
must match the SHA-256 the hub publishes before it is moved into place, so neither a
partial nor a corrupted file is ever taken for the model. Then `hf_hub_download`
itself, finding the blob there, writes the cache's refs and snapshot link: the cache
stays the library's (`hf cache ls`, `try_to_load_from_cache`, llama.cpp's -hf all see it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from borealis_local.catalog import DEFAULT_QUANT, Model, check_quant
from borealis_local.errors import (
    ChecksumMismatchError,
    DownloadInterruptedError,
    HubError,
    HubUnreachableError,
)
from borealis_local.hub import hf_internals, record
from borealis_local.hub.licences import require_license
from borealis_local.hub.remote import RemoteFile, hub_errors, remote_file
from borealis_local.hub.verification import Verification, file_sha256, verify_path

PARTIAL_SUFFIX = ".partial"


@dataclass(frozen=True)
class Pulled:
    """What `pull` did and the file it leaves."""

    model: Model
    quant: str
    path: Path
    how: str
    """"downloaded", "resumed" or "already here"."""
    verification: Verification
    resumed_from: int = 0
    note: str | None = None
    """Why the hub was not asked, when it was not."""
    projector: Pulled | None = None
    """The vision projector pulled with a 4b, 12b or 27b (unless `mmproj=False`)."""
    warning: str | None = None
    """What the user must be told: a vision model whose repo lists no projector."""
    is_projector: bool = False
    """True for the projector itself."""

    @property
    def name(self) -> str:
        if self.is_projector:
            return f"{self.model.name} vision projector"
        return f"{self.model.name}:{self.quant}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.name, "path": str(self.path), "how": self.how,
            "resumed_from": self.resumed_from, "note": self.note,
            "verification": self.verification.to_dict(),
            "projector": self.projector.to_dict() if self.projector else None,
            "warning": self.warning,
        }  # fmt: skip


def pull(
    model: Model,
    quant: str = DEFAULT_QUANT,
    *,
    local_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | None = None,
    accept_license: bool = False,
    ask: Callable[[Model], bool] | None = None,
    status: Callable[[str], None] | None = None,
    mmproj: bool = True,
) -> Pulled:
    """Download one Borealis GGUF (resuming a broken download), verify it and return it.

    Into the Hugging Face cache (`cache_dir`, default HF_HUB_CACHE), or `local_dir`.
    The licence comes first (`require_license`). Offline, or with the hub out of reach,
    the file already on disk is used; without one, HubError says what to do.

    A size that sees images (4b, 12b, 27b) brings its vision projector too, the mmproj
    GGUF of the same repo that `llama-server -hf` would take (`projector`), downloaded
    and verified the same way, into the same folder; `mmproj=False` leaves it. A repo
    that lists none is not an error: the model is pulled and `warning` says so.
    """
    quant = check_quant(quant)
    require_license(model, accept=accept_license, ask=ask)
    from huggingface_hub import is_offline_mode

    wants_projector = mmproj and model.vision is not None
    if is_offline_mode():
        pulled = _from_disk(model, quant, local_dir, cache_dir, why="HF_HUB_OFFLINE=1 is set")
        return _projector_from_disk(pulled) if wants_projector else pulled
    try:
        remote = remote_file(model, quant, token=token)
        url, metadata = _file_metadata(model, remote, token)
    except HubUnreachableError as error:
        pulled = _from_disk(model, quant, local_dir, cache_dir, why=str(error))
        return _projector_from_disk(pulled) if wants_projector else pulled
    path, how, resumed_from = _download(model, remote, url, metadata, local_dir, cache_dir,
                                        token, status)
    pulled = Pulled(
        model, quant, path, how, verify_path(path, model, quant, remote=remote),
        resumed_from=resumed_from,
    )
    if not wants_projector:
        return pulled
    projector = remote.projector()
    if projector is None:
        return replace(pulled, warning=(
            f"{remote.repo} lists no vision projector (no *mmproj*.gguf at {remote.source}): "
            f"{model.name} was pulled and serves text, but images will not work with it"
        ))
    try:
        url, metadata = _file_metadata(model, projector, token)
    except HubUnreachableError:
        return _projector_from_disk(pulled)
    path, how, resumed_from = _download(model, projector, url, metadata, local_dir, cache_dir,
                                        token, status)
    return replace(pulled, projector=Pulled(
        model, quant, path, how, verify_path(path, model, None, remote=projector),
        resumed_from=resumed_from, is_projector=True,
    ))


def _download(
    model: Model, remote: RemoteFile, url: str, metadata: Any, local_dir: Any, cache_dir: Any,
    token: str | None, status: Callable[[str], None] | None,
) -> tuple[Path, str, int]:
    """One file of the repo into place: (its path, how, the byte it resumed at)."""
    destination = (
        Path(local_dir).expanduser() / remote.filename
        if local_dir
        else _cache_blob(remote.repo, metadata.etag, cache_dir)
    )
    resumed_from = None
    if not destination.exists():
        resumed_from = _fetch(model, remote, url, metadata, destination, token, status)
    path = destination if local_dir else _place_in_cache(model, remote, cache_dir, token)
    how = {None: "already here", 0: "downloaded"}.get(resumed_from, "resumed")
    return path, how, resumed_from or 0


def _projector_from_disk(pulled: Pulled) -> Pulled:
    """Offline: the projector already beside the model file, checked against the record."""
    from borealis_local.hub.projector import find_projector

    found = find_projector(pulled.path)
    if found is None:
        command = pulled.model.pull_command(pulled.quant)
        return replace(pulled, warning=(
            f"no vision projector for {pulled.model.name} is on this machine and the hub "
            f"was not asked: images will not work until `{command}` runs with a connection"
        ))
    return replace(pulled, projector=Pulled(
        pulled.model, pulled.quant, found, "already here",
        verify_path(found, pulled.model, None), note=pulled.note, is_projector=True,
    ))


def _file_metadata(model: Model, remote: RemoteFile, token: str | None) -> tuple[str, Any]:
    """The file's URL and the hub's HEAD answer: ETag, size and where the bytes are."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(remote.repo, remote.filename, revision=remote.revision)
    with hub_errors(model, remote.filename):
        metadata = get_hf_file_metadata(url, token=token)
    if not (metadata.etag and metadata.commit_hash):
        raise HubError(
            f"{url} answered without the hub's ETag and X-Repo-Commit headers, so it is not "
            "the Hugging Face hub: check HF_ENDPOINT and any proxy in between"
        )
    return url, metadata


def _cache_blob(repo: str, etag: str, cache_dir: str | os.PathLike | None) -> Path:
    """Where the cache keeps a file's bytes: models--ORG--NAME/blobs/ETAG (the layout
    huggingface_hub documents in its cache guide)."""
    return hf_internals.blobs_dir(repo, cache_dir) / etag


def _partial_path(destination: Path, filename: str, etag: str) -> Path:
    # Named for the ETag: a partial of an older revision is never resumed into a newer one.
    return destination.with_name(f"{filename}.{etag[:16]}{PARTIAL_SUFFIX}")


def _fetch(
    model: Model, remote: RemoteFile, url: str, metadata: Any, destination: Path,
    token: str | None, status: Callable[[str], None] | None,
) -> int:
    """Download into the partial file (resuming it), check its SHA-256, move it into
    place. Returns how many bytes were already there."""
    from huggingface_hub.utils import build_hf_headers

    size = metadata.size or remote.size
    partial = _partial_path(destination, remote.filename, metadata.etag)
    partial.parent.mkdir(parents=True, exist_ok=True)
    with hf_internals.file_lock(partial.with_name(partial.name + ".lock")):  # one writer
        if size is not None and partial.exists() and partial.stat().st_size > size:
            partial.unlink()  # longer than the file: not a prefix of it
        resumed_from = partial.stat().st_size if partial.exists() else 0
        headers = build_hf_headers(token=token)
        if _origin(metadata.location) != _origin(url):
            headers.pop("authorization", None)  # a CDN gets a signed URL, never the token
        try:
            with partial.open("ab") as file:
                hf_internals.http_get(
                    metadata.location, file, resume_size=resumed_from, headers=headers,
                    expected_size=size, displayed_filename=remote.filename,
                )
        except Exception as error:
            raise _interrupted(remote, partial, size, error) from error
        if status:
            status(f"checking the SHA-256 of {remote.filename}")
        actual = file_sha256(partial)
        if remote.sha256 and actual != remote.sha256:
            partial.unlink()
            raise ChecksumMismatchError(
                f"{remote.filename} as downloaded does not match the hub: expected sha256 "
                f"{remote.sha256} ({remote.source}), got {actual}. It was corrupted on the "
                "way and has been deleted; run the same command again to download it afresh",
                expected=remote.sha256, actual=actual,
            )
        partial.replace(destination)
    record.remember(destination, actual, remote.sha256, remote.sha256_source)
    return resumed_from


def _interrupted(remote: RemoteFile, partial: Path, size: int | None, error: Exception):
    have = partial.stat().st_size if partial.exists() else 0
    of = f" of {size:,}" if size else ""
    return DownloadInterruptedError(
        f"the download of {remote.filename} broke off after {have:,}{of} bytes "
        f"({type(error).__name__}: {error}). The part is kept in {partial}: run the same "
        "command again to resume"
    )


def _origin(url: str) -> tuple[str, str]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def _place_in_cache(
    model: Model, remote: RemoteFile, cache_dir: str | os.PathLike | None, token: str | None
) -> Path:
    """Let huggingface_hub link the blob into the cache (refs/main, the snapshot)."""
    from huggingface_hub import hf_hub_download

    with hub_errors(model, remote.filename):
        return Path(
            hf_hub_download(remote.repo, remote.filename, cache_dir=cache_dir, token=token)
        )


def _from_disk(
    model: Model, quant: str, local_dir: Any, cache_dir: Any, *, why: str
) -> Pulled:
    """Offline: the file already downloaded, checked against what was recorded."""
    from huggingface_hub import constants, try_to_load_from_cache

    filename = model.gguf_filename(quant)
    if local_dir:
        found = Path(local_dir).expanduser() / filename
        path = found if found.is_file() else None
        place = str(found.parent)
    else:
        cached = try_to_load_from_cache(model.gguf_repo, filename, cache_dir=cache_dir)
        path = Path(cached) if isinstance(cached, str) else None
        place = f"the Hugging Face cache ({cache_dir or constants.HF_HUB_CACHE})"
    if path is None:
        what_to_do = (
            f"unset HF_HUB_OFFLINE and run `{model.pull_command(quant)}` with a connection"
            if why.startswith("HF_HUB_OFFLINE")
            else "check the connection (or HTTPS_PROXY) and run again"
        )
        raise HubError(
            f"{why}, and {filename} is not in {place}: {what_to_do}, or put the file in "
            "$BOREALIS_MODELS"
        )
    return Pulled(
        model, quant, path, "already here", verify_path(path, model, quant),
        note=f"{why}: the hub was not asked",
    )
