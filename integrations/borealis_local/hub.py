"""Getting the weights: pull a Borealis GGUF from the Hugging Face hub, verify it, and
see what is on this machine.

Downloads go through `huggingface_hub` and keep its conventions: its cache (HF_HOME,
HF_HUB_CACHE), its token (HF_TOKEN or `hf auth login`), HF_ENDPOINT, its progress bars,
and HF_HUB_OFFLINE=1 (the cache only, no request at all). Every request has a timeout
(HF_HUB_ETAG_TIMEOUT and HF_HUB_DOWNLOAD_TIMEOUT, 10 s by default), so a dead network
fails fast and the cache stands in when it can.

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

Verifying. A file's SHA-256 is compared with the hub's LFS metadata for that file at
the revision it came from (`HfApi.model_info(files_metadata=True)`), or with a hash the
user gives. The result is recorded under the file's size, mtime, ctime and inode in
$XDG_CACHE_HOME/borealis-local/verified.json, so the next verify of an unchanged file
does not read 7 GB again (`rehash=True` does; a change that keeps all four, such as bit
rot on the disk, is only found by rehashing). The GGUF header is checked too
(`runtime.gguf_check`: architecture, completeness; the quant the file name states; the
layer count and, where the catalog knows it, the size). Signatures: a repo file ending
in .sig / .sigstore / .sigstore.json is reported, never trusted unchecked; a repo
without one is "unsigned". Nothing here says "verified" unless the hash matched.

Licences. A licence with use restrictions (NB-License, the full models) is shown with
its restrictions and must be accepted once, at a terminal or with --accept-license;
the acceptance is remembered in $XDG_CACHE_HOME/borealis-local/licenses.json.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from borealis_local.catalog import (
    DEFAULT_QUANT,
    KNOWN_FILE_SIZES,
    MODELS,
    License,
    Model,
    check_quant,
    parse_name,
)
from borealis_local.errors import (
    BorealisError,
    InvalidModelFileError,
    InvalidRequestError,
    ModelNotFoundError,
    UnknownModelError,
)

STATE_DIR_NAME = "borealis-local"
LICENSES_FILE = "licenses.json"
VERIFIED_FILE = "verified.json"
PARTIAL_SUFFIX = ".partial"
# What OpenSSF model signing writes (`model.sig` by default) and sigstore bundles.
SIGNATURE_SUFFIXES = (".sig", ".sigstore", ".sigstore.json")
SIGNING_NOT_INSTALLED = "model-signing is not installed (pip install model-signing)"
_HASH_CHUNK = 16 * 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class HubError(BorealisError):
    """The hub refused the request or could not be reached, and the cache cannot stand in."""


class HubUnreachableError(HubError):
    """No answer from the hub: no network, a proxy in the way, or HF_HUB_OFFLINE=1."""


class DownloadInterruptedError(HubError):
    """The download broke off; the part already fetched is kept and resumed next time."""


class LicenseNotAcceptedError(BorealisError):
    """A model whose licence restricts its use, pulled before the licence was accepted."""


class ChecksumMismatchError(InvalidModelFileError):
    """A file whose SHA-256 is not the one published for it."""

    def __init__(self, message: str, *, expected: str, actual: str):
        super().__init__(message)
        self.expected = expected
        self.actual = actual


# -- state kept between runs -----------------------------------------------------------


def state_dir() -> Path:
    """`$XDG_CACHE_HOME/borealis-local` (~/.cache/borealis-local): licence acceptances
    and the record of verified files. Losing it costs a question and a re-hash."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / STATE_DIR_NAME


def _load_state(name: str) -> dict[str, Any]:
    try:
        data = json.loads((state_dir() / name).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):  # a damaged file is only forgotten state
        return {}
    return data if isinstance(data, dict) else {}


def _save_state(name: str, data: dict[str, Any]) -> None:
    path = state_dir() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    temporary.replace(path)  # atomic: a reader never sees half a file


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- licences --------------------------------------------------------------------------


def _license_key(license: License) -> str:
    return f"{license.name} <{license.url}>"


def license_accepted(license: License) -> bool:
    return _license_key(license) in _load_state(LICENSES_FILE)


def accept_license(license: License) -> None:
    accepted = _load_state(LICENSES_FILE)
    accepted[_license_key(license)] = {"accepted_at": _now()}
    _save_state(LICENSES_FILE, accepted)


def license_text(model: Model) -> str:
    """The licence as a person should read it before the first pull."""
    license = model.license
    lines = [f"{model.name} is licensed under {license.name}: {license.url}", license.summary]
    if license.restrictions:
        lines.append("Use restrictions:")
        lines += [f"  {n}. {text}" for n, text in enumerate(license.restrictions, 1)]
    return "\n".join(lines)


def require_license(
    model: Model, *, accept: bool = False, ask: Callable[[Model], bool] | None = None
) -> None:
    """Return once the model's licence is accepted: earlier, now by `accept`, or by `ask`
    (a question at a terminal). Licences without use restrictions need no acceptance."""
    license = model.license
    if not license.restrictions or license_accepted(license):
        return
    if accept or (ask is not None and ask(model)):
        accept_license(license)
        return
    if ask is not None:
        raise LicenseNotAcceptedError(
            f"you did not accept {license.name}, so nothing was downloaded"
        )
    restrictions = " ".join(f"({n}) {text}" for n, text in enumerate(license.restrictions, 1))
    raise LicenseNotAcceptedError(
        f"{model.name} is under {license.name} ({license.url}), which restricts its use: "
        f"{restrictions} Read it, then run again with --accept-license (there is no "
        "terminal here to ask in); it is asked once"
    )


# -- the hub's answers -----------------------------------------------------------------


@dataclass(frozen=True)
class RemoteFile:
    """A GGUF as the hub publishes it at one revision."""

    repo: str
    filename: str
    revision: str
    """The commit the metadata describes."""
    size: int | None
    sha256: str | None
    """From the file's LFS metadata."""
    repo_files: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        return f"{self.repo}@{self.revision[:12]}"

    @property
    def signature_files(self) -> tuple[str, ...]:
        return tuple(name for name in self.repo_files if name.endswith(SIGNATURE_SUFFIXES))


def remote_file(
    model: Model, quant: str = DEFAULT_QUANT, *, revision: str | None = None,
    token: str | None = None,
) -> RemoteFile:
    """Size, SHA-256 and sibling files of a GGUF, from the hub's model API. Gated repos
    answer this without access; only their files need it."""
    from huggingface_hub import HfApi, constants

    filename = model.gguf_filename(quant)
    with _hub_errors(model, filename):
        info = HfApi().model_info(
            model.gguf_repo, revision=revision, files_metadata=True, token=token,
            timeout=constants.HF_HUB_ETAG_TIMEOUT,
        )
    siblings = {sibling.rfilename: sibling for sibling in info.siblings or ()}
    sibling = siblings.get(filename)
    if sibling is None:
        ggufs = ", ".join(name for name in siblings if name.endswith(".gguf")) or "none"
        raise HubError(f"{model.gguf_repo} has no file {filename}; its GGUF files: {ggufs}")
    lfs = sibling.lfs
    return RemoteFile(
        repo=model.gguf_repo,
        filename=filename,
        revision=info.sha or revision or "main",
        size=lfs.size if lfs else sibling.size,
        sha256=lfs.sha256 if lfs else None,
        repo_files=tuple(siblings),
    )


@contextmanager
def _hub_errors(model: Model, filename: str) -> Iterator[None]:
    """The hub's errors as ours, each saying what to do."""
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
    )

    try:
        yield
    except GatedRepoError:
        raise HubError(_access_message(model)) from None
    except RemoteEntryNotFoundError:
        raise HubError(f"{model.gguf_repo} has no file {filename}") from None
    except RepositoryNotFoundError as error:
        if _status(error) in (401, 403) and model.gated:
            raise HubError(_access_message(model)) from None
        raise HubError(
            f"{model.gguf_repo} was not found on {constants.ENDPOINT} — check HF_ENDPOINT, "
            "or log in (`hf auth login`) if the repository is private"
        ) from None
    except (OfflineModeIsEnabled, httpx2.TransportError) as error:
        raise HubUnreachableError(
            f"cannot reach the hub at {constants.ENDPOINT} ({str(error) or type(error).__name__})"
        ) from error
    except HfHubHTTPError as error:
        if _status(error) == 401:
            raise HubError(
                "the hub refused the token: log in again with `hf auth login`, or fix HF_TOKEN"
            ) from None
        raise HubError(
            f"the hub answered {_status(error)} for {model.gguf_repo}/{filename} "
            f"({error.server_message or 'no message'}); try again later"
        ) from None


def _status(error: Any) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def _access_message(model: Model) -> str:
    from huggingface_hub import constants, get_token

    page = f"{constants.ENDPOINT}/{model.gguf_repo}"
    who = (
        "you are not logged in"
        if get_token() is None
        else "the token in use (HF_TOKEN, or the one `hf auth login` stored) has no access yet"
    )
    return (
        f"{model.gguf_repo} is gated and {who}: open {page}, accept the "
        f"{model.license.short_name} there to request access, then log in with "
        "`hf auth login` (or set HF_TOKEN) and run again"
    )


# -- pull ------------------------------------------------------------------------------


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

    @property
    def name(self) -> str:
        return f"{self.model.name}:{self.quant}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.name, "path": str(self.path), "how": self.how,
            "resumed_from": self.resumed_from, "note": self.note,
            "verification": self.verification.to_dict(),
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
) -> Pulled:
    """Download one Borealis GGUF (resuming a broken download), verify it and return it.

    Into the Hugging Face cache (`cache_dir`, default HF_HUB_CACHE), or `local_dir`.
    The licence comes first (`require_license`). Offline, or with the hub out of reach,
    the file already on disk is used; without one, HubError says what to do.
    """
    quant = check_quant(quant)
    require_license(model, accept=accept_license, ask=ask)
    from huggingface_hub import is_offline_mode

    if is_offline_mode():
        return _from_disk(model, quant, local_dir, cache_dir, why="HF_HUB_OFFLINE=1 is set")
    try:
        remote = remote_file(model, quant, token=token)
        url, metadata = _file_metadata(model, remote, token)
    except HubUnreachableError as error:
        return _from_disk(model, quant, local_dir, cache_dir, why=str(error))
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
    return Pulled(
        model, quant, path, how, _verify_path(path, model, quant, remote=remote),
        resumed_from=resumed_from or 0,
    )


def _file_metadata(model: Model, remote: RemoteFile, token: str | None) -> tuple[str, Any]:
    """The file's URL and the hub's HEAD answer: ETag, size and where the bytes are."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(remote.repo, remote.filename, revision=remote.revision)
    with _hub_errors(model, remote.filename):
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
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    root = Path(cache_dir or constants.HF_HUB_CACHE).expanduser()
    return root / repo_folder_name(repo_id=repo, repo_type="model") / "blobs" / etag


def _partial_path(destination: Path, filename: str, etag: str) -> Path:
    # Named for the ETag: a partial of an older revision is never resumed into a newer one.
    return destination.with_name(f"{filename}.{etag[:16]}{PARTIAL_SUFFIX}")


def _fetch(
    model: Model, remote: RemoteFile, url: str, metadata: Any, destination: Path,
    token: str | None, status: Callable[[str], None] | None,
) -> int:
    """Download into the partial file (resuming it), check its SHA-256, move it into
    place. Returns how many bytes were already there."""
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import WeakFileLock, build_hf_headers

    size = metadata.size or remote.size
    partial = _partial_path(destination, remote.filename, metadata.etag)
    partial.parent.mkdir(parents=True, exist_ok=True)
    with WeakFileLock(partial.with_name(partial.name + ".lock")):  # one writer per partial
        if size is not None and partial.exists() and partial.stat().st_size > size:
            partial.unlink()  # longer than the file: not a prefix of it
        resumed_from = partial.stat().st_size if partial.exists() else 0
        headers = build_hf_headers(token=token)
        if _origin(metadata.location) != _origin(url):
            headers.pop("authorization", None)  # a CDN gets a signed URL, never the token
        try:
            with partial.open("ab") as file:
                http_get(
                    metadata.location, file, resume_size=resumed_from, headers=headers,
                    expected_size=size, displayed_filename=remote.filename,
                )
        except Exception as error:
            raise _interrupted(remote, partial, size, error) from error
        if status:
            status(f"checking the SHA-256 of {remote.filename}")
        actual = _sha256(partial)
        if remote.sha256 and actual != remote.sha256:
            partial.unlink()
            raise ChecksumMismatchError(
                f"{remote.filename} as downloaded does not match the hub: expected sha256 "
                f"{remote.sha256} ({remote.source}), got {actual}. It was corrupted on the "
                "way and has been deleted; run the same command again to download it afresh",
                expected=remote.sha256, actual=actual,
            )
        partial.replace(destination)
    _record(destination, actual, remote.sha256, _hub_source(remote))
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

    with _hub_errors(model, remote.filename):
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
        model, quant, path, "already here", _verify_path(path, model, quant),
        note=f"{why}: the hub was not asked",
    )


# -- verify ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    """What is known about one local GGUF: its hash against a published one, its
    header against the catalog, and the repo's signature."""

    path: Path
    size: int
    sha256: str
    expected_sha256: str | None
    expected_source: str
    """Where the expected hash came from, or why there is none."""
    rehashed: bool
    """False when the hash came from the record of verified files (nothing was read)."""
    header: str | None
    """The header in one line, when it parsed."""
    problems: tuple[str, ...] = ()
    """Header, size and quant problems."""
    signature: str = "not checked"
    model: str | None = None
    """`borealis-4b:Q4_K_M` when the file name is a catalog name."""

    @property
    def hash_status(self) -> str:
        if self.expected_sha256 is None:
            return "unknown"
        return "match" if self.sha256 == self.expected_sha256 else "mismatch"

    @property
    def verified(self) -> bool:
        return self.hash_status == "match" and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "model": self.model, "size": self.size,
            "verified": self.verified, "sha256": self.sha256,
            "expected_sha256": self.expected_sha256, "expected_source": self.expected_source,
            "hash": self.hash_status, "rehashed": self.rehashed, "header": self.header,
            "problems": list(self.problems), "signature": self.signature,
        }  # fmt: skip


def verify(
    target: str | os.PathLike,
    *,
    sha256: str | None = None,
    rehash: bool = False,
    token: str | None = None,
) -> Verification:
    """Verify a local GGUF, named by path or catalog name (`borealis-4b:Q8_0`).

    Against `sha256` when given (no request is made); else against the hub's LFS
    metadata for a catalog file, at the revision it was downloaded from; offline,
    against the hash recorded when the hub was last asked.
    """
    path, model, quant = _resolve_target(target)
    expected = _hex_sha256(sha256) if sha256 else None
    remote = None
    if expected is None and model is not None:
        try:
            remote = remote_file(model, quant, revision=_snapshot_revision(path), token=token)
        except HubUnreachableError:
            remote = None  # the record may still know the published hash
    return _verify_path(path, model, quant, remote=remote, given=expected, rehash=rehash)


def catalog_file(filename: str) -> tuple[Model, str] | None:
    """(model, quant) when `filename` is a catalog GGUF name, e.g. borealis-4b-Q8_0.gguf."""
    stem, _, quant = filename.removesuffix(".gguf").rpartition("-")
    try:
        model, quant = parse_name(f"{stem}:{quant}")
    except UnknownModelError:
        return None
    return (model, quant) if model.gguf_filename(quant) == filename else None


def _resolve_target(target: str | os.PathLike) -> tuple[Path, Model | None, str | None]:
    from borealis_local.runtime.resolve import find_local_gguf

    text = os.fspath(target)
    path = Path(text).expanduser()
    if path.exists() or text.endswith(".gguf") or os.sep in text:
        if not path.is_file():
            raise InvalidModelFileError(f"no such file: {path} (give a .gguf path or a name "
                                        "such as borealis-4b:Q8_0)")
        model, quant = catalog_file(path.name) or (None, None)
        return path, model, quant
    model, quant = parse_name(text)
    try:
        return find_local_gguf(model, quant), model, quant
    except ModelNotFoundError:
        raise ModelNotFoundError(
            f"{model.name}:{quant} is not on this machine (not in the Hugging Face cache nor "
            f"$BOREALIS_MODELS): `{model.pull_command(quant)}` downloads and verifies it"
        ) from None


def _hex_sha256(text: str) -> str:
    digest = text.strip().lower().removeprefix("sha256:")
    if not _SHA256.match(digest):
        raise InvalidRequestError(
            f"{text!r} is not a SHA-256: give its 64 hexadecimal digits (the hub shows them "
            "on the file's page)"
        )
    return digest


def _snapshot_revision(path: Path) -> str | None:
    """The commit a cached file was downloaded at (…/snapshots/COMMIT/file)."""
    parent = path.parent
    if parent.parent.name == "snapshots" and _COMMIT.match(parent.name):
        return parent.name
    return None


def _verify_path(
    path: Path, model: Model | None, quant: str | None, *,
    remote: RemoteFile | None = None, given: str | None = None, rehash: bool = False,
) -> Verification:
    size = path.stat().st_size
    header, problems = _check_header(path, model, quant, size, remote)
    stored = _stored(path)
    unchanged = not rehash and _unchanged(stored, path)
    actual = stored["sha256"] if unchanged else _sha256(path)
    expected, source, fresh = _expected_hash(given, remote, stored, model)
    if fresh:
        _record(path, actual, expected, source)
    elif not unchanged:  # a new hash; the published one recorded earlier still holds
        _record(path, actual, *(_published(stored) if stored else (None, None)))
    return Verification(
        path=path, size=size, sha256=actual, expected_sha256=expected,
        expected_source=source, rehashed=not unchanged, header=header,
        problems=tuple(problems), signature=_signature_status(remote, given),
        model=f"{model.name}:{quant}" if model else None,
    )  # fmt: skip


def _hub_source(remote: RemoteFile) -> str:
    return f"the hub's LFS metadata for {remote.source}"


def _expected_hash(
    given: str | None, remote: RemoteFile | None, stored: dict | None, model: Model | None
) -> tuple[str | None, str, bool]:
    """(expected hash, where it came from, whether it is fresh rather than recorded).

    Offline, the hash the hub published when it was last asked stands in: it describes
    the hub's file, whatever happened to the local one since."""
    if given:
        return given, "the hash given (--sha256)", True
    if remote is not None and remote.sha256:
        return remote.sha256, _hub_source(remote), True
    if remote is not None:
        return None, f"{remote.source} publishes no LFS hash for this file", False
    if stored and stored.get("expected_sha256"):
        expected, source = _published(stored)
        return expected, f"{source}, recorded {stored.get('recorded_at', 'earlier')}", False
    if model is None:
        return None, "not a Borealis file name, so no published hash: give --sha256 HEX", False
    return None, (
        "the hub could not be asked and this file was never checked here: connect, or "
        "give --sha256 HEX"
    ), False


def _check_header(
    path: Path, model: Model | None, quant: str | None, size: int, remote: RemoteFile | None
) -> tuple[str | None, list[str]]:
    from borealis_local.runtime.gguf_check import check_gguf

    problems = []
    if remote is not None and remote.size is not None and size != remote.size:
        problems.append(f"the file has {size:,} bytes, the hub's {remote.size:,}")
    try:
        info = check_gguf(path)
    except InvalidModelFileError as error:
        return None, [*problems, str(error)]
    if model is not None:
        if info.file_type != quant:
            problems.append(
                f"the header says {info.file_type or 'no quantisation'}, the name {quant}"
            )
        if info.block_count != model.shape.layers:
            problems.append(
                f"the header has {info.block_count} layers, {model.name} has "
                f"{model.shape.layers}"
            )
        known = KNOWN_FILE_SIZES.get(path.name)
        if known is not None and size != known:
            problems.append(f"the file has {size:,} bytes, the published one {known:,}")
    header = (
        f"{info.architecture}, {info.block_count} layers, {info.tensor_count} tensor(s), "
        f"{info.file_type or 'no stated quantisation'}"
    )
    return header, problems


def _signature_status(remote: RemoteFile | None, given: str | None) -> str:
    if remote is None:
        asked = "--sha256 was given" if given else "the hub could not be asked"
        return f"not checked: {asked}, so the repo's files are not known"
    signatures = ", ".join(remote.signature_files)
    if not signatures:
        return "unsigned"
    if importlib.util.find_spec("model_signing") is None:
        return f"signature present ({signatures}) but {SIGNING_NOT_INSTALLED}"
    # model_signing checks a signature against a signer identity and against every
    # file the signature lists (set_ignore_unsigned_files still hashes them all): the
    # National Library publishes no identity, and one GGUF of a repo's seven cannot pass.
    return (
        f"signature present ({signatures}), not checked: the National Library has not "
        "published the identity that signs Borealis, so no signer can be confirmed "
        "(model_signing verify sigstore --identity … checks a download of the whole repo)"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# -- the record of verified files ------------------------------------------------------


def _stat_key(path: Path) -> dict[str, int]:
    # ctime and inode change on any write or replacement, and cannot be set back by hand.
    status = path.stat()
    return {
        "size": status.st_size, "mtime_ns": status.st_mtime_ns,
        "ctime_ns": status.st_ctime_ns, "inode": status.st_ino,
    }  # fmt: skip


def _stored(path: Path) -> dict[str, Any] | None:
    entry = _load_state(VERIFIED_FILE).get(str(path.resolve()))
    return entry if isinstance(entry, dict) and "sha256" in entry else None


def _unchanged(entry: dict[str, Any] | None, path: Path) -> bool:
    """Whether the file is as it was when `entry` recorded its hash."""
    return entry is not None and entry.get("stat") == _stat_key(path)


def _published(entry: dict[str, Any]) -> tuple[str | None, str | None]:
    return entry.get("expected_sha256"), entry.get("source")


def _record(path: Path, sha256: str, expected: str | None, source: str | None) -> None:
    records = {
        name: entry for name, entry in _load_state(VERIFIED_FILE).items() if Path(name).exists()
    }
    records[str(path.resolve())] = {
        "stat": _stat_key(path), "sha256": sha256, "expected_sha256": expected,
        "source": source, "recorded_at": _now(),
    }  # fmt: skip
    _save_state(VERIFIED_FILE, records)


def recorded_state(path: Path) -> str:
    """"verified", "hash mismatch" or "not verified", from the record alone."""
    entry = _stored(path)
    if not _unchanged(entry, path) or not entry.get("expected_sha256"):
        return "not verified"
    return "verified" if entry["sha256"] == entry["expected_sha256"] else "hash mismatch"


# -- what is on this machine -----------------------------------------------------------


@dataclass(frozen=True)
class LocalFile:
    """A Borealis GGUF (or a partial download of one) on this machine."""

    name: str
    """`borealis-4b:Q4_K_M`."""
    path: Path
    size: int
    where: str
    """"HF cache", "$BOREALIS_MODELS" or "elsewhere" (a file verified by path)."""
    state: str
    """"verified", "not verified", "hash mismatch" or "partial"."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "size": self.size,
                "where": self.where, "state": self.state}


def local_files(cache_dir: str | os.PathLike | None = None) -> list[LocalFile]:
    """Borealis GGUFs in the Hugging Face cache, in $BOREALIS_MODELS and wherever a file
    was verified; and partial downloads, which are never taken for a model."""
    from borealis_local.runtime.resolve import MODELS_DIR_ENV

    found: dict[Path, LocalFile] = {}
    candidates = list(_cached_files(cache_dir))
    models_dir = os.environ.get(MODELS_DIR_ENV)
    if models_dir:
        candidates += [(path, "$" + MODELS_DIR_ENV) for path in Path(models_dir).glob("*")]
    candidates += [(Path(name), "elsewhere") for name in _load_state(VERIFIED_FILE)]
    for path, where in candidates:
        local = _local_file(path, where)
        if local is not None:
            found.setdefault(path.resolve(), local)
    return sorted(found.values(), key=lambda local: (local.name, str(local.path)))


def _cached_files(cache_dir: str | os.PathLike | None) -> Iterator[tuple[Path, str]]:
    from huggingface_hub import constants, scan_cache_dir
    from huggingface_hub.errors import CacheNotFound
    from huggingface_hub.file_download import repo_folder_name

    repos = {model.gguf_repo for model in MODELS}
    try:
        cache = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return
    for repo in cache.repos:
        if repo.repo_id in repos and repo.repo_type == "model":
            for revision in repo.revisions:
                yield from ((cached.file_path, "HF cache") for cached in revision.files)
    # A repo with only a partial download has no snapshot yet, which the scan skips.
    root = Path(cache_dir or constants.HF_HUB_CACHE).expanduser()
    for repo_id in sorted(repos):
        blobs = root / repo_folder_name(repo_id=repo_id, repo_type="model") / "blobs"
        yield from ((partial, "HF cache") for partial in blobs.glob("*" + PARTIAL_SUFFIX))


def _local_file(path: Path, where: str) -> LocalFile | None:
    filename, partial = path.name, path.name.endswith(PARTIAL_SUFFIX)
    if partial:  # NAME.gguf.ETAG.partial
        filename = filename.removesuffix(PARTIAL_SUFFIX).rpartition(".")[0]
    catalog = catalog_file(filename)
    if catalog is None or not path.is_file():
        return None
    model, quant = catalog
    state = "partial" if partial else recorded_state(path)
    return LocalFile(f"{model.name}:{quant}", path, path.stat().st_size, where, state)


def ollama_models(host: str | None = None) -> tuple[list[dict[str, Any]] | None, str]:
    """The Borealis models in Ollama and a line saying where Ollama is; None instead of
    the list when Ollama cannot be asked (that is not an error here)."""
    try:
        import httpx
        import ollama
    except ImportError:
        return None, "the Ollama client is not installed (pip install 'borealis-local[ollama]')"
    from borealis_local.runtime.ollama import DEFAULT_HOST

    host = host or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST
    client = ollama.Client(host=host, timeout=5)
    try:
        listed = client.list()
    except (ConnectionError, httpx.HTTPError, ollama.ResponseError):
        return None, f"Ollama is not running at {host} (start it with `ollama serve`)"
    finally:
        client.close()
    models = [
        {"name": model.model, "size": model.size}
        for model in listed.models
        if "borealis" in (model.model or "").lower()
    ]
    return models, f"Ollama at {host}"


# -- from a pulled file to a running model ---------------------------------------------


def llama_server_preset(model: Model, quant: str, path: Path) -> str:
    """The model's llama-server preset section (presets.py), with the local file in
    place of the hub repo."""
    from borealis_local.presets import llama_server_presets

    lines = llama_server_presets(quant).splitlines()
    start = lines.index(f"[{model.name}]")
    end = next((i for i in range(start + 1, len(lines)) if not lines[i]), len(lines))
    section = [
        f"model = {path}" if line.startswith("hf-repo =") else line
        for line in lines[start:end]
    ]
    return "\n".join(section) + "\n"


__all__ = [
    "ChecksumMismatchError",
    "DownloadInterruptedError",
    "HubError",
    "HubUnreachableError",
    "LicenseNotAcceptedError",
    "LocalFile",
    "Pulled",
    "RemoteFile",
    "Verification",
    "accept_license",
    "catalog_file",
    "license_accepted",
    "license_text",
    "llama_server_preset",
    "local_files",
    "ollama_models",
    "pull",
    "remote_file",
    "require_license",
    "state_dir",
    "verify",
]
