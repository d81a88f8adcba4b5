"""The huggingface_hub helpers `pull` needs that the library does not export, in one place.

- `repo_folder_name`: the cache's `models--ORG--NAME` folder. The layout is documented
  (the cache guide); the helper that spells it lives in `huggingface_hub.file_download`.
- `http_get`: the library's own GET with `resume_size`, retries and progress bar. No
  exported call resumes into a partial file of ours (huggingface_hub 2.x names its
  temporary files per process, so an interrupted `hf_hub_download` starts over).
- `WeakFileLock`: its cross-process file lock, so two pulls never write one partial.

Pinned in pyproject.toml (`huggingface_hub>=2.4,<3`): check these before allowing 3.x.
"""

from __future__ import annotations

import os
from pathlib import Path


def blobs_dir(repo_id: str, cache_dir: str | os.PathLike | None) -> Path:
    """Where the cache keeps a model repo's file contents, named by ETag."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    root = Path(cache_dir or constants.HF_HUB_CACHE).expanduser()
    return root / repo_folder_name(repo_id=repo_id, repo_type="model") / "blobs"


def http_get(*args, **kwargs) -> None:
    from huggingface_hub.file_download import http_get as library_http_get

    library_http_get(*args, **kwargs)


def file_lock(path: Path):
    """A lock file beside `path`'s writer, held across processes while in `with`."""
    from huggingface_hub.utils import WeakFileLock

    return WeakFileLock(path)
