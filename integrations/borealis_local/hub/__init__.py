"""Getting the weights: pull a Borealis GGUF from the Hugging Face hub, verify it, and
see what is on this machine.

One job per module, each importing only those above it in this list:

- `state`: the small JSON files kept between runs in `paths.state_dir()`.
- `hf_internals`: the huggingface_hub helpers it does not export (pinned, and why).
- `licences`: a licence with use restrictions is accepted once before a download
  (its text is `borealis_local.licences`).
- `remote`: what the hub publishes about a GGUF (size, SHA-256, sibling files), and the
  hub's errors as ours, each saying what to do.
- `projector`: the vision projector (mmproj GGUF) of 4b, 12b and 27b: which file of a
  repo listing (`pick_projector`, as `llama-server -hf` picks) and which local file
  belongs to a model (`find_projector`).
- `record`: the record of verified files, so an unchanged file is not hashed again.
- `signing`: the National Library's signature scheme, checked with `cryptography`.
- `verification`: `verify`, a local GGUF's hash, header and signature.
- `repo_verification`: `verify_repo`, a whole downloaded repo against its manifest.
- `download`: `pull`, a resumable download into the hub's cache or a folder.
- `inventory`: the Borealis files on this machine and in Ollama, and llama-server's
  preset for a pulled file.

Import from here (`from borealis_local import hub`); the modules are the layout.
"""

from borealis_local.errors import (
    ChecksumMismatchError,
    DownloadInterruptedError,
    HubError,
    HubUnreachableError,
    LicenseNotAcceptedError,
)
from borealis_local.hub.download import Pulled, pull
from borealis_local.hub.inventory import LocalFile, llama_server_preset, local_files, ollama_models
from borealis_local.hub.licences import accept_license, license_accepted, require_license
from borealis_local.hub.projector import find_projector, pick_projector
from borealis_local.hub.record import recorded_state
from borealis_local.hub.remote import RemoteFile, remote_file
from borealis_local.hub.repo_verification import RepoVerification, verify_repo
from borealis_local.hub.signing import SignatureCheck
from borealis_local.hub.verification import (
    Verification,
    catalog_file,
    verify,
    verify_projector,
)
from borealis_local.paths import state_dir

__all__ = [
    "ChecksumMismatchError",
    "DownloadInterruptedError",
    "HubError",
    "HubUnreachableError",
    "LicenseNotAcceptedError",
    "LocalFile",
    "Pulled",
    "RemoteFile",
    "RepoVerification",
    "SignatureCheck",
    "Verification",
    "accept_license",
    "catalog_file",
    "find_projector",
    "license_accepted",
    "llama_server_preset",
    "local_files",
    "ollama_models",
    "pick_projector",
    "pull",
    "recorded_state",
    "remote_file",
    "require_license",
    "state_dir",
    "verify",
    "verify_projector",
    "verify_repo",
]
