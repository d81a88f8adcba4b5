"""Verifying a local GGUF: its SHA-256 against a published one, its header against the
catalog, and the repo's signature; and a whole downloaded repo against its signed
manifest (`verify_repo`).

A file's SHA-256 is compared with the hub's LFS metadata for that file at the revision
it came from (`HfApi.model_info(files_metadata=True)`), or with a hash the user gives;
offline, with the published hash recorded when the hub was last asked. The result goes
into the record of verified files (`record`), so the next verify of an unchanged file
does not read it again. The GGUF header is checked too (`runtime.gguf_check`:
architecture, completeness; the quant the file name states; the layer count and, where
the catalog knows it, the size). Signatures: the National Library's scheme (a signed
SHA256SUMS manifest and a certificate chain in `signing/`) is checked in full by
`signing`, the root pinned on first use; an OpenSSF model-signing file (`model.sig`)
is reported, never trusted unchecked; a repo with neither is "unsigned". Nothing here
says "verified" unless the hash matched, and a signature that fails fails the verify.
A vision projector (mmproj GGUF) is verified the same way, its header checked as a
Gemma 3 projector that fits its model (`projector`); `verify_projector` verifies the
one a model file has beside it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from borealis_local.catalog import KNOWN_FILE_SIZES, Model, parse_name
from borealis_local.errors import (
    HubUnreachableError,
    InvalidModelFileError,
    InvalidRequestError,
    ModelNotFoundError,
    UnknownModelError,
)
from borealis_local.hub import record
from borealis_local.hub.projector import (
    find_projector,
    is_projector_name,
    models_for_projector,
    projector_problems,
    read_projector,
)
from borealis_local.hub.remote import RemoteFile, fetch_repo_file, remote_file
from borealis_local.hub.signing import (
    SignatureCheck,
    SigningFiles,
    check_listing,
    check_signature,
    failed,
)

SIGNING_NOT_INSTALLED = "model-signing is not installed (pip install model-signing)"
_HASH_CHUNK = 16 * 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


HashStatus = Literal["match", "mismatch", "unknown"]


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
    """The signature's verdict in one line."""
    model: str | None = None
    """`borealis-4b:Q4_K_M` when the file name is a catalog name."""
    signature_check: SignatureCheck | None = None
    """The National Library's signature, where the repo has one and it could be asked."""
    projector_of: str | None = None
    """`borealis-4b` when the file is that model's vision projector (mmproj)."""

    @property
    def hash_status(self) -> HashStatus:
        if self.expected_sha256 is None:
            return "unknown"
        return "match" if self.sha256 == self.expected_sha256 else "mismatch"

    @property
    def verified(self) -> bool:
        signature_failed = self.signature_check is not None and not self.signature_check.verified
        return self.hash_status == "match" and not self.problems and not signature_failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "model": self.model, "size": self.size,
            "verified": self.verified, "sha256": self.sha256,
            "expected_sha256": self.expected_sha256, "expected_source": self.expected_source,
            "hash": self.hash_status, "rehashed": self.rehashed, "header": self.header,
            "problems": list(self.problems), "signature": self.signature,
            "signature_check": self.signature_check.to_dict() if self.signature_check else None,
            "projector_of": self.projector_of,
        }  # fmt: skip


def verify(
    target: str | os.PathLike,
    *,
    sha256: str | None = None,
    rehash: bool = False,
    token: str | None = None,
    trust_root: str | None = None,
) -> Verification:
    """Verify a local GGUF, named by path or catalog name (`borealis-4b:Q8_0`).

    Against `sha256` when given (no request is made); else against the hub's LFS
    metadata for a catalog file, at the revision it was downloaded from; offline,
    against the hash recorded when the hub was last asked. `trust_root` (a SHA-256)
    pins the signing root instead of trusting the first one seen.
    """
    path, model, quant = _resolve_target(target)
    expected = _hex_sha256(sha256) if sha256 else None
    remote = None
    if expected is None and model is not None:
        # A projector is looked up by its own name in the model's repo listing.
        filename = path.name if is_projector_name(path.name) else None
        try:
            remote = remote_file(model, quant, revision=_snapshot_revision(path), token=token,
                                 filename=filename)
        except HubUnreachableError:
            remote = None  # the record may still know the published hash
    return verify_path(path, model, quant, remote=remote, given=expected, rehash=rehash,
                       token=token, trust_root=trust_root)


def verify_projector(
    model_path: str | os.PathLike, *, rehash: bool = False, token: str | None = None,
    trust_root: str | None = None,
) -> Verification | None:
    """Verify the vision projector `find_projector` finds for a model file, as `verify`
    does any file (hash, header, signature); None when the model has none here."""
    found = find_projector(model_path)
    return None if found is None else verify(found, rehash=rehash, token=token,
                                             trust_root=trust_root)


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
        if is_projector_name(path.name):
            return path, _projector_model(path), None
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


def _projector_model(path: Path) -> Model | None:
    """The catalog model a projector file belongs to, when only one can be meant."""
    try:
        width = read_projector(path).projection_dim
    except InvalidModelFileError:
        width = None
    models = models_for_projector(path, width)
    return models[0] if len(models) == 1 else None


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


def verify_path(
    path: Path, model: Model | None, quant: str | None, *,
    remote: RemoteFile | None = None, given: str | None = None, rehash: bool = False,
    token: str | None = None, trust_root: str | None = None,
) -> Verification:
    """Verify `path` against `given`, else `remote`, else the record; record the result;
    check the repo's signature where `remote` lists one."""
    size = path.stat().st_size
    projector = is_projector_name(path.name)
    check_header = _check_projector_header if projector else _check_header
    header, problems = check_header(path, model, quant, size, remote)
    stored = record.stored(path)
    unchanged = not rehash and record.unchanged(stored, path)
    actual = stored["sha256"] if unchanged else file_sha256(path)
    expected, source, fresh = _expected_hash(given, remote, stored, model)
    if fresh:
        record.remember(path, actual, expected, source)
    elif not unchanged:  # a new hash; the published one recorded earlier still holds
        record.remember(path, actual, *(record.published(stored) if stored else (None, None)))
    check = None
    files = SigningFiles.find(remote.repo_files) if remote is not None else None
    if files is not None and model is not None:
        check = signature_of(files, remote, model, path.name, actual, token, trust_root)
    return Verification(
        path=path, size=size, sha256=actual, expected_sha256=expected,
        expected_source=source, rehashed=not unchanged, header=header,
        problems=tuple(problems),
        signature=check.summary if check else _signature_status(remote, given),
        model=f"{model.name}:{quant}" if model and not projector else None,
        signature_check=check, projector_of=model.name if model and projector else None,
    )  # fmt: skip


def _expected_hash(
    given: str | None, remote: RemoteFile | None, stored: dict | None, model: Model | None
) -> tuple[str | None, str, bool]:
    """(expected hash, where it came from, whether it is fresh rather than recorded).

    Offline, the hash the hub published when it was last asked stands in: it describes
    the hub's file, whatever happened to the local one since."""
    if given:
        return given, "the hash given (--sha256)", True
    if remote is not None and remote.sha256:
        return remote.sha256, remote.sha256_source, True
    if remote is not None:
        return None, f"{remote.source} publishes no LFS hash for this file", False
    if stored and stored.get("expected_sha256"):
        expected, source = record.published(stored)
        return expected, f"{source}, recorded {stored.get('recorded_at', 'earlier')}", False
    if model is None:
        return None, "not a Borealis file name, so no published hash: give --sha256 HEX", False
    return None, (
        "the hub could not be asked and this file was never checked here: connect, or "
        "give --sha256 HEX"
    ), False


def _size_problems(size: int, remote: RemoteFile | None) -> list[str]:
    """The file's size against the hub's listing, when it lists one."""
    if remote is not None and remote.size is not None and size != remote.size:
        return [f"the file has {size:,} bytes, the hub's {remote.size:,}"]
    return []


def _check_header(
    path: Path, model: Model | None, quant: str | None, size: int, remote: RemoteFile | None
) -> tuple[str | None, list[str]]:
    from borealis_local.runtime.gguf_check import check_gguf

    problems = _size_problems(size, remote)
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


def _check_projector_header(
    path: Path, model: Model | None, quant: str | None, size: int, remote: RemoteFile | None
) -> tuple[str | None, list[str]]:
    """A projector's header: a complete clip GGUF, and one that fits its model."""
    problems = _size_problems(size, remote)
    try:
        header = read_projector(path)
    except InvalidModelFileError as error:
        return None, [*problems, str(error)]
    if model is not None:
        problems += projector_problems(header, model)
    return f"vision projector: {header.summary}", problems


def signature_of(
    files: SigningFiles, remote: RemoteFile, model: Model, filename: str, sha256: str,
    token: str | None, trust_root: str | None,
) -> SignatureCheck:
    """The National Library's signature over the repo's manifest, and this file in it."""
    from borealis_local.errors import HubError

    if files.missing:
        return failed("files", f"{remote.repo} has {', '.join(files.present)} in signing/, "
                      f"but no {' and no '.join(files.missing)}")
    try:
        manifest, signature, *chain = (
            fetch_repo_file(remote, name, model, token)
            for name in (files.manifest, files.signature, *files.chain)
        )
    except HubError as error:
        return SignatureCheck("not checked", f"not checked: the signing files could not be "
                              f"fetched ({error})")
    check = checked_and_pinned(manifest, signature, chain, trust_root, remote.repo)
    return check_listing(check, filename, sha256)


def checked_and_pinned(manifest: bytes, signature: bytes, chain: list[bytes],
                       trust_root: str | None, repo: str) -> SignatureCheck:
    """Checks 2 to 6 (`signing`), against the root given or pinned; a first verified
    chain pins its root."""
    expected = root_to_expect(trust_root)
    return trusted(check_signature(manifest, signature, chain, trusted_root=expected),
                   trust_root, repo)


def root_to_expect(trust_root: str | None) -> str | None:
    """The root SHA-256 a chain must have: the one given, else the pinned one."""
    if trust_root is not None:
        return _hex_sha256(trust_root)
    pinned = record.trusted_root()
    return pinned["sha256"] if pinned else None


def trusted(check: SignatureCheck, trust_root: str | None, repo: str) -> SignatureCheck:
    """Pin a verified chain's root: explicitly, or on first use; say which."""
    if not check.verified:
        return check
    pinned = record.trusted_root()
    if trust_root is not None:
        how = "root given with --trust-root"
    elif pinned is None:
        how = "root pinned now (first use: later verifies expect this root)"
    else:
        return replace(check, root_pinned=f"root pinned {pinned['how']}",
                       summary=f"{check.summary}, the root pinned {pinned['pinned_at']}")
    record.pin_root(check.root_sha256, "with --trust-root" if trust_root else "on first use",
                    repo)
    return replace(check, root_pinned=how, summary=f"{check.summary}, {how}")


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


def file_sha256(path: Path) -> str:
    """The file's SHA-256, read in chunks: a GGUF can be larger than memory."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
