"""What the hub publishes about a Borealis GGUF, and the hub's errors as ours.

Requests go through `huggingface_hub` and keep its conventions: its token (HF_TOKEN or
`hf auth login`), HF_ENDPOINT, and HF_HUB_OFFLINE=1 (no request at all). Every request
has a timeout (HF_HUB_ETAG_TIMEOUT, 10 s by default), so a dead network fails fast and
the cache stands in when it can. Each error the hub can give becomes a HubError (or
HubUnreachableError) whose message says what to do next.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from borealis_local.catalog import DEFAULT_QUANT, Model
from borealis_local.errors import HubError, HubUnreachableError

# What OpenSSF model signing writes (`model.sig` by default) and sigstore bundles.
OPENSSF_SIGNATURE_SUFFIXES = (".sig", ".sigstore", ".sigstore.json")


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
    lfs_files: tuple[tuple[str, int | None, str | None], ...] = ()
    """(name, size, SHA-256) of every file in the listing, for its siblings."""

    @property
    def source(self) -> str:
        return f"{self.repo}@{self.revision[:12]}"

    @property
    def sha256_source(self) -> str:
        """Where `sha256` came from, as the record of verified files states it."""
        return f"the hub's LFS metadata for {self.source}"

    @property
    def signature_files(self) -> tuple[str, ...]:
        return tuple(name for name in self.repo_files if name.endswith(OPENSSF_SIGNATURE_SUFFIXES))

    def sibling(self, filename: str) -> RemoteFile:
        """Another file of the same listing (the projector), at the same revision."""
        for name, size, sha256 in self.lfs_files:
            if name == filename:
                return replace(self, filename=filename, size=size, sha256=sha256)
        raise HubError(f"{self.repo} has no file {filename} at {self.source}")

    def projector(self) -> RemoteFile | None:
        """The vision projector in this listing that `llama-server -hf` would take for
        this file (`projector.pick_projector`), or None when the repo has none."""
        from borealis_local.hub.projector import pick_projector

        chosen = pick_projector(self.repo_files, self.filename)
        return None if chosen is None else self.sibling(chosen)


def remote_file(
    model: Model, quant: str = DEFAULT_QUANT, *, revision: str | None = None,
    token: str | None = None, filename: str | None = None,
) -> RemoteFile:
    """Size, SHA-256 and sibling files of a GGUF (the model's file in `quant`, or
    `filename` of its repo, such as the projector), from the hub's model API. Gated
    repos answer this without access; only their files need it."""
    from huggingface_hub import HfApi, constants

    filename = filename or model.gguf_filename(quant)
    with hub_errors(model, filename):
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
        lfs_files=tuple(
            (name, entry.lfs.size if entry.lfs else entry.size,
             entry.lfs.sha256 if entry.lfs else None)
            for name, entry in siblings.items()
        ),
    )


def fetch_repo_file(remote: RemoteFile, filename: str, model: Model,
                    token: str | None = None) -> bytes:
    """A small file of the repo at the revision `remote` describes (the signing files),
    through the hub's cache like every download."""
    from huggingface_hub import hf_hub_download

    with hub_errors(model, filename):
        path = hf_hub_download(remote.repo, filename, revision=remote.revision, token=token)
    with open(path, "rb") as file:
        return file.read()


@contextmanager
def hub_errors(model: Model, filename: str) -> Iterator[None]:
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
