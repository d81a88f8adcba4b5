"""`borealis pull`, `verify` and `list --local` as a user runs them, against FakeHub.

The hub cannot be reached here: FakeHub (tests/hub_support.py, a test double) answers
huggingface_hub's own requests on 127.0.0.1 through HF_ENDPOINT, so the library's real
download code runs; the files are real GGUFs (written with gguf's GGUFWriter, and the
real Gemma 3 270M stand-in). Each test has its own HF_HOME and XDG_CACHE_HOME.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub
import pytest
from hub_support import GOOD_TOKEN, FakeHub, closed_port_url, make_gguf, sha256_of
from huggingface_hub import try_to_load_from_cache
from huggingface_hub.constants import DOWNLOAD_CHUNK_SIZE

from borealis_local import hub as hub_module
from borealis_local.catalog import NB_LICENSE, get_model
from borealis_local.hub import verification

OPEN = get_model("270m", "open")
FULL = get_model("270m", "full")
OPEN_FILE = OPEN.gguf_filename()
# sha256 of gemma-3-270m-q4_k_m.gguf, from FACTS.md.
STAND_IN_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> bytes:
    return make_gguf(tmp_path_factory.mktemp("gguf") / "weights.gguf").read_bytes()


@pytest.fixture
def hub(weights):
    with FakeHub() as fake:
        fake.add(OPEN.gguf_repo, OPEN_FILE, weights)
        fake.add(FULL.gguf_repo, FULL.gguf_filename(), weights, gated=True)
        yield fake


@dataclass
class User:
    """One user's machine: a home for the HF cache and borealis-local's state."""

    home: Path
    endpoint: str

    @property
    def hf_cache(self) -> Path:
        return self.home / "hf" / "hub"

    def env(self, **extra: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("HF_", "OLLAMA_", "BOREALIS_"))}
        env |= {
            "HF_HOME": str(self.home / "hf"), "HF_ENDPOINT": self.endpoint,
            "XDG_CACHE_HOME": str(self.home / "xdg"), "OLLAMA_HOST": closed_port_url(),
            "HF_HUB_DISABLE_TELEMETRY": "1", "COLUMNS": "300",
        }  # fmt: skip
        env |= {k: v for k, v in extra.items() if v is not None}
        return env

    def borealis(self, *args: str, **extra: str | None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "borealis_local.cli", *args], capture_output=True,
            text=True, env=self.env(**extra), stdin=subprocess.DEVNULL, timeout=120,
        )  # fmt: skip

    def cached(self, model=OPEN, filename=OPEN_FILE) -> Path | None:
        found = try_to_load_from_cache(model.gguf_repo, filename, cache_dir=self.hf_cache)
        return Path(found) if isinstance(found, str) else None


@pytest.fixture
def user(tmp_path, hub) -> User:
    return User(tmp_path / "user", hub.url)


def flip_a_byte(path: Path, offset: int = 600_000) -> None:
    with path.open("r+b") as file:
        file.seek(offset)
        byte = file.read(1)
        file.seek(offset)
        file.write(bytes([byte[0] ^ 0xFF]))


# -- pull ------------------------------------------------------------------------------


def test_pull_downloads_verifies_and_links_into_the_hf_cache(user, hub, weights):
    pulled = user.borealis("pull", "270m", "--variant", "open")
    assert pulled.returncode == 0, pulled.stderr
    assert f"{OPEN.name}:Q4_K_M: downloaded" in pulled.stdout
    assert f"sha256     ok {sha256_of(weights)}" in pulled.stdout
    assert "header     ok gemma3, 18 layers" in pulled.stdout
    assert "signature  unsigned" in pulled.stdout
    assert "Gemma Terms of Use (https://ai.google.dev/gemma/terms)" in pulled.stderr
    path = user.cached()
    assert path is not None and path.read_bytes() == weights
    assert not list(user.hf_cache.rglob("*.partial"))

    again = user.borealis("pull", "270m", "--variant", "open", "--llama-server")
    assert again.returncode == 0, again.stderr
    assert "already here" in again.stdout and len(hub.seen("cdn", "GET")) == 1
    assert f"[{OPEN.name}]\nmodel = {path}\n" in again.stdout
    assert "hf-repo" not in again.stdout and "chat-template-file = " in again.stdout


def test_a_byte_flipped_on_the_way_fails_the_pull_and_nothing_is_kept(user, hub, tmp_path):
    model = get_model("1b", "open")
    published = make_gguf(tmp_path / "1b.gguf", layers=model.shape.layers, seed=1).read_bytes()
    corrupted = bytearray(published)
    corrupted[500_000] ^= 0x01
    hub.add(model.gguf_repo, model.gguf_filename(), published, served=bytes(corrupted))
    pulled = user.borealis("pull", "1b", "--variant", "open")
    assert pulled.returncode == 1
    assert sha256_of(published) in pulled.stderr and sha256_of(corrupted) in pulled.stderr
    assert "run the same command again" in pulled.stderr
    assert user.cached(model, model.gguf_filename()) is None
    assert not list(user.hf_cache.rglob("*.partial"))


def test_an_interrupted_download_resumes_and_is_never_taken_as_complete(user, hub, tmp_path):
    # huggingface_hub writes what it receives in chunks of DOWNLOAD_CHUNK_SIZE (10 MiB):
    # cut the connection inside the second chunk, after the first reached the disk.
    chunk = DOWNLOAD_CHUNK_SIZE
    weights = make_gguf(tmp_path / "big.gguf", nbytes=chunk + chunk // 2).read_bytes()
    hub.add(OPEN.gguf_repo, OPEN_FILE, weights)
    hub.cut_next_download(after=chunk + 1000)
    broken = user.borealis("pull", "270m", "--variant", "open")
    assert broken.returncode == 1
    assert f"broke off after {chunk:,} of {len(weights):,} bytes" in broken.stderr
    assert "run the same command again to resume" in broken.stderr
    assert user.cached() is None
    (partial,) = user.hf_cache.rglob("*.partial")
    assert partial.stat().st_size == chunk
    listed = user.borealis("list", "--local", "--json")
    assert [f["state"] for f in json.loads(listed.stdout)["files"]] == ["partial"]
    not_there = user.borealis("verify", OPEN.name)
    assert not_there.returncode == 1 and "not on this machine" in not_there.stderr

    hub.restore()
    resumed = user.borealis("pull", "270m", "--variant", "open")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed at byte {chunk:,}" in resumed.stdout
    assert hub.seen("cdn", "GET")[-1].headers.get("range") == f"bytes={chunk}-"
    assert user.cached().read_bytes() == weights
    assert not partial.exists()


@pytest.mark.parametrize(
    ("token", "who"),
    [(None, "you are not logged in"), ("hf_someone_without_access", "has no access yet")],
    ids=["401-no-token", "403-no-access"],
)
def test_a_gated_repo_names_the_access_page_and_how_to_log_in(user, hub, token, who):
    pulled = user.borealis("pull", "270m", "--accept-license", HF_TOKEN=token)
    assert pulled.returncode == 1
    assert f"{hub.url}/{FULL.gguf_repo}" in pulled.stderr
    assert "hf auth login" in pulled.stderr and who in pulled.stderr
    assert pulled.stderr.count("\n") <= 2  # the licence line and the error, no traceback
    assert not hub.seen("cdn")


def test_a_gated_repo_with_access_downloads_and_the_token_stays_off_the_cdn(user, hub):
    pulled = user.borealis("pull", "270m", "--accept-license", HF_TOKEN=GOOD_TOKEN)
    assert pulled.returncode == 0, pulled.stderr
    assert all(s.headers.get("authorization") for s in hub.seen("hub", "HEAD"))
    assert not any(s.headers.get("authorization") for s in hub.seen("cdn"))
    assert user.cached(FULL, FULL.gguf_filename()) is not None


# -- licences --------------------------------------------------------------------------


def test_the_licence_is_refused_without_a_terminal_then_accepted_once(user, hub):
    refused = user.borealis("pull", "270m", HF_TOKEN=GOOD_TOKEN)
    assert refused.returncode == 1
    for text in (NB_LICENSE.name, NB_LICENSE.url, "--accept-license",
                 "recreate training data", "press publications"):
        assert text in refused.stderr
    assert not hub.requests  # nothing is asked of the hub before the licence

    accepted = user.borealis("pull", "270m", "--accept-license", HF_TOKEN=GOOD_TOKEN)
    assert accepted.returncode == 0, accepted.stderr
    assert NB_LICENSE.name in (user.home / "xdg/borealis-local/licenses.json").read_text()
    remembered = user.borealis("pull", "270m", HF_TOKEN=GOOD_TOKEN)
    assert remembered.returncode == 0, remembered.stderr


def at_a_terminal(user: User, typed: str, *args: str, **extra: str) -> tuple[int, str]:
    """Run borealis with a pseudo-terminal as stdin and `typed` typed ahead."""
    controller, terminal = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "borealis_local.cli", *args], stdin=terminal,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=user.env(**extra),
    )  # fmt: skip
    os.close(terminal)
    os.write(controller, typed.encode())
    try:
        _, err = process.communicate(timeout=60)
    finally:
        os.close(controller)
    return process.returncode, err


def test_the_licence_is_asked_at_a_terminal_and_remembered(user, hub):
    code, err = at_a_terminal(user, "n\n", "pull", "270m", HF_TOKEN=GOOD_TOKEN)
    assert code == 1 and "you did not accept" in err and not hub.requests
    assert "Use restrictions:" in err and "Do you accept this licence?" in err

    code, err = at_a_terminal(user, "y\n", "pull", "270m", HF_TOKEN=GOOD_TOKEN)
    assert code == 0, err
    code, err = at_a_terminal(user, "", "pull", "270m", HF_TOKEN=GOOD_TOKEN)
    assert code == 0 and "Do you accept" not in err


# -- offline ---------------------------------------------------------------------------


def test_offline_uses_the_cache_without_a_request(user, hub, weights):
    assert user.borealis("pull", "270m", "--variant", "open").returncode == 0
    asked = len(hub.requests)
    started = time.monotonic()
    offline = user.borealis("pull", "270m", "--variant", "open", HF_HUB_OFFLINE="1")
    assert offline.returncode == 0, offline.stderr
    assert time.monotonic() - started < 15
    assert "already here (HF_HUB_OFFLINE=1 is set: the hub was not asked)" in offline.stdout
    assert f"sha256     ok {sha256_of(weights)}" in offline.stdout  # from the record
    verified = user.borealis("verify", OPEN.name, HF_HUB_OFFLINE="1")
    assert verified.returncode == 0, verified.stdout
    assert len(hub.requests) == asked

    empty = User(user.home.parent / "empty", hub.url)
    missing = empty.borealis("pull", "270m", "--variant", "open", HF_HUB_OFFLINE="1")
    assert missing.returncode == 1
    assert "HF_HUB_OFFLINE=1 is set" in missing.stderr
    assert "`borealis pull 270m --variant open` with a connection" in missing.stderr


def test_an_unreachable_hub_falls_back_to_the_cache(user, hub):
    assert user.borealis("pull", "270m", "--variant", "open").returncode == 0
    nowhere = closed_port_url()
    cached = user.borealis("pull", "270m", "--variant", "open", HF_ENDPOINT=nowhere)
    assert cached.returncode == 0, cached.stderr
    assert f"already here (cannot reach the hub at {nowhere}" in cached.stdout

    empty = User(user.home.parent / "empty", nowhere)
    missing = empty.borealis("pull", "270m", "--variant", "open")
    assert missing.returncode == 1 and "check the connection" in missing.stderr


# -- verify ----------------------------------------------------------------------------


def test_verify_finds_a_flipped_byte_and_shows_both_hashes(user, hub, weights):
    assert user.borealis("pull", "270m", "--variant", "open").returncode == 0
    path = user.cached()
    flip_a_byte(path.resolve())
    damaged = path.read_bytes()
    checked = user.borealis("verify", OPEN.name)
    assert checked.returncode == 1
    assert "sha256     MISMATCH" in checked.stdout
    assert f"expected {sha256_of(weights)}" in checked.stdout
    assert f"actual   {sha256_of(damaged)}" in checked.stdout
    assert "NOT verified" in checked.stdout

    given = user.borealis("verify", str(path), "--sha256", sha256_of(damaged), "--json")
    result = json.loads(given.stdout)
    assert given.returncode == 0 and result["verified"] and result["hash"] == "match"


def test_a_second_verify_does_not_read_the_file_again(tmp_path, monkeypatch, weights):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    path = tmp_path / OPEN_FILE
    path.write_bytes(weights)
    reads = []
    real_sha256 = verification.file_sha256
    monkeypatch.setattr(verification, "file_sha256", lambda p: reads.append(p) or real_sha256(p))
    digest = sha256_of(weights)

    first = hub_module.verify(path, sha256=digest)
    second = hub_module.verify(path, sha256=digest)
    assert first.verified and second.verified and len(reads) == 1
    assert first.rehashed and not second.rehashed
    hub_module.verify(path, sha256=digest, rehash=True)
    assert len(reads) == 2

    # Offline, the hash recorded earlier stands in for the published one.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    offline = hub_module.verify(path)
    assert offline.verified and "recorded" in offline.expected_source and len(reads) == 2
    flip_a_byte(path)
    changed = hub_module.verify(path)
    assert len(reads) == 3 and changed.hash_status == "mismatch" and not changed.verified
    assert changed.expected_sha256 == digest and changed.sha256 != digest


def test_verify_checks_the_header_against_the_catalog(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    # A 270m-shaped Q4_K_M file under the 4b Q8_0 name: right hash, wrong file.
    misnamed = make_gguf(tmp_path / "borealis-4b-Q8_0.gguf")
    result = hub_module.verify(misnamed, sha256=sha256_of(misnamed.read_bytes()))
    assert result.hash_status == "match" and not result.verified
    assert any("Q4_K_M" in p and "Q8_0" in p for p in result.problems)
    assert any("18 layers" in p and "34" in p for p in result.problems)

    known = make_gguf(tmp_path / "borealis-4b-Q4_K_M.gguf", layers=34)
    result = hub_module.verify(known, sha256=sha256_of(known.read_bytes()))
    assert result.problems == (f"the file has {known.stat().st_size:,} bytes, the published "
                               "one 2,489,894,560",)

    truncated = tmp_path / OPEN_FILE
    truncated.write_bytes(misnamed.read_bytes()[:400_000])
    result = hub_module.verify(truncated, sha256=sha256_of(truncated.read_bytes()))
    assert not result.verified and "truncated" in result.problems[0]


def test_verify_the_real_stand_in_model(gemma_gguf, tmp_path):
    user = User(tmp_path, closed_port_url())
    link = tmp_path / OPEN_FILE
    link.symlink_to(gemma_gguf)
    checked = user.borealis("verify", str(link), "--sha256", STAND_IN_SHA256)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "header     ok gemma3, 18 layers, 236 tensor(s), Q4_K_M" in checked.stdout
    assert "signature  not checked: --sha256 was given" in checked.stdout


def test_a_signature_in_the_repo_is_reported_never_trusted_unchecked(user, hub):
    hub.add(OPEN.gguf_repo, "model.sig", b'{"mediaType": "sigstore bundle"}')
    pulled = user.borealis("pull", "270m", "--variant", "open")
    assert pulled.returncode == 0, pulled.stderr
    if importlib.util.find_spec("model_signing") is None:
        assert ("signature present (model.sig) but model-signing is not installed "
                "(pip install model-signing)") in pulled.stdout
    else:
        assert "signature present (model.sig), not checked" in pulled.stdout


# -- what is on this machine -----------------------------------------------------------


def test_list_local_shows_files_verified_or_not_and_that_ollama_is_not_running(
    user, hub, weights, tmp_path
):
    assert user.borealis("pull", "270m", "--variant", "open").returncode == 0
    elsewhere = tmp_path / "mine"
    assert user.borealis("pull", "270m", "--variant", "open", "--local-dir",
                         str(elsewhere)).returncode == 0
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / OPEN.gguf_filename("Q8_0")).write_bytes(weights)
    (models_dir / "notes.txt").write_text("not a model")

    offline = user.borealis("pull", "270m", "--variant", "open", "--local-dir", str(elsewhere),
                            HF_HUB_OFFLINE="1")
    assert offline.returncode == 0 and "sha256     ok" in offline.stdout

    env = {"BOREALIS_MODELS": str(models_dir)}
    listed = json.loads(user.borealis("list", "--local", "--json", **env).stdout)
    states = {(f["name"], f["where"]): f["state"] for f in listed["files"]}
    assert states == {
        (f"{OPEN.name}:Q4_K_M", "HF cache"): "verified",
        (f"{OPEN.name}:Q4_K_M", "elsewhere"): "verified",
        (f"{OPEN.name}:Q8_0", "$BOREALIS_MODELS"): "not verified",
    }
    assert listed["ollama"]["models"] is None
    table = user.borealis("list", "--local", **env).stdout
    assert "Ollama is not running at http://127.0.0.1:" in table and "ollama serve" in table


def test_pull_into_ollama_then_list_it(user, hub, go_renderer, tmp_path):
    from ollama_double import OllamaDouble

    with OllamaDouble(go_renderer, home=tmp_path / "ollama") as ollama:
        pulled = user.borealis("pull", "270m", "--variant", "open", "--ollama",
                               OLLAMA_HOST=ollama.url)
        assert pulled.returncode == 0, pulled.stderr
        assert f"created {OPEN.ollama_tag} in Ollama" in pulled.stdout
        (model,) = ollama.models.values()
        assert model.template.startswith("{{- /* Borealis chat template for Ollama")
        listed = user.borealis("list", "--local", OLLAMA_HOST=ollama.url)
        assert f"Ollama at {ollama.url}: {OPEN.ollama_tag}" in listed.stdout
