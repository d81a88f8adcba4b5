"""The vision projector as part of the weights: found in the repo listing as
`llama-server -hf` finds it, pulled and verified with the model, found on this machine,
shown by verify and list --local, and carried into presets, Modelfiles and Ollama.

The hub is FakeHub (tests/hub_support.py, a test double of the hub's HTTP); the model
and projector files are real GGUFs written with gguf's GGUFWriter (`make_gguf`,
`make_projector`: complete files with the metadata a Gemma 3 mmproj has, not its
weights); the Ollama double (tests/ollama_double.py) takes a create as Ollama's
server/create.go does.
"""

from __future__ import annotations

import json

import pytest
from hub_support import FakeHub, make_gguf, make_projector, sha256_of
from test_hub import User, flip_a_byte

from borealis_local import hub
from borealis_local.catalog import get_model
from borealis_local.hub.projector import find_projector, pick_projector, quant_bits
from borealis_local.lint import lint_modelfile
from borealis_local.modelfile import render_modelfile
from borealis_local.presets import llama_server_presets

OPEN_4B = get_model("4b", "open")
OPEN_12B = get_model("12b", "open")
MODEL_FILE = OPEN_4B.gguf_filename()
PROJECTOR_FILE = "mmproj-borealis-open-4b-F16.gguf"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("vision")
    return {
        "model": make_gguf(folder / "m.gguf", layers=OPEN_4B.shape.layers).read_bytes(),
        "projector": make_projector(folder / "p.gguf").read_bytes(),
        "projector 12b": make_projector(folder / "p12.gguf", projection_dim=3840).read_bytes(),
    }


@pytest.fixture
def fake(files):
    with FakeHub() as served:
        served.add(OPEN_4B.gguf_repo, MODEL_FILE, files["model"])
        served.add(OPEN_4B.gguf_repo, PROJECTOR_FILE, files["projector"])
        yield served


@pytest.fixture
def user(tmp_path, fake) -> User:
    return User(tmp_path / "user", fake.url)


def cdn_gets(fake: FakeHub) -> int:
    return len(fake.seen("cdn", "GET"))


def resolved(fake: FakeHub, filename: str) -> bool:
    return any(filename in seen.path for seen in fake.seen("hub"))


# -- which file of a listing ------------------------------------------------------------


def test_quant_bits_read_the_names_last_tag_as_llama_cpp_does():
    assert quant_bits("borealis-4b-Q4_K_M.gguf") == 4
    assert quant_bits("mmproj-borealis-4b-F16.gguf") == 16
    assert quant_bits("mmproj-BF16.gguf") == 16
    assert quant_bits("borealis-27b-Q8_0-00001-of-00002.gguf") == 8
    assert quant_bits("mmproj.gguf") == 0


@pytest.mark.parametrize(("listing", "model", "expected"), [
    # The quantisation nearest the model's in bits, as find_best_mmproj ranks them.
    (["mmproj-F16.gguf", "mmproj-Q8_0.gguf", "borealis-4b-Q4_K_M.gguf"],
     "borealis-4b-Q4_K_M.gguf", "mmproj-Q8_0.gguf"),
    (["mmproj-Q8_0.gguf", "mmproj-F16.gguf"], "borealis-4b-BF16.gguf", "mmproj-F16.gguf"),
    # Equal distance: the first in the listing.
    (["mmproj-BF16.gguf", "mmproj-F16.gguf"], "borealis-4b-Q8_0.gguf", "mmproj-BF16.gguf"),
    # "mmproj" anywhere in the name; .gguf only.
    (["README.md", "mmproj.txt", "gemma3-4b-mmproj.gguf"], "borealis-4b-Q4_K_M.gguf",
     "gemma3-4b-mmproj.gguf"),
    # The model's folder or one above it, the deepest first; never a folder beside it.
    (["mmproj-F16.gguf", "q4/mmproj-F16.gguf", "other/mmproj-Q4_0.gguf"],
     "q4/borealis-4b-Q4_K_M.gguf", "q4/mmproj-F16.gguf"),
    (["other/mmproj-Q4_0.gguf"], "borealis-4b-Q4_K_M.gguf", None),
    (["borealis-4b-Q4_K_M.gguf", "signing/SHA256SUMS"], "borealis-4b-Q4_K_M.gguf", None),
])  # fmt: skip
def test_the_projector_is_picked_from_the_listing_as_llama_server_hf_picks(
    listing, model, expected
):
    assert pick_projector(listing, model) == expected


# -- pull -------------------------------------------------------------------------------


def test_pull_of_a_vision_size_fetches_and_verifies_its_projector(user, fake, files):
    pulled = user.borealis("pull", "4b", "--variant", "open")
    assert pulled.returncode == 0, pulled.stderr
    assert f"{OPEN_4B.name}:Q4_K_M: downloaded" in pulled.stdout
    assert f"{OPEN_4B.name} vision projector: downloaded" in pulled.stdout
    assert f"sha256     ok {sha256_of(files['projector'])}" in pulled.stdout
    assert "header     ok vision projector: clip (gemma3), 27 encoder blocks, projects to " \
           "2560" in pulled.stdout
    assert "role       the vision projector (mmproj) of borealis-open-4b" in pulled.stdout
    model = user.cached(OPEN_4B, MODEL_FILE)
    projector = user.cached(OPEN_4B, PROJECTOR_FILE)
    assert projector is not None and projector.read_bytes() == files["projector"]
    assert projector.parent == model.parent  # one snapshot, as llama-server -hf leaves them

    again = user.borealis("pull", "4b", "--variant", "open", "--llama-server")
    assert again.returncode == 0, again.stderr
    assert f"{OPEN_4B.name} vision projector: already here" in again.stdout
    assert cdn_gets(fake) == 2
    assert f"model = {model}\nmmproj = {projector}\n" in again.stdout


def test_pull_as_json_carries_the_projector(user, files):
    pulled = user.borealis("pull", "4b", "--variant", "open", "--json")
    assert pulled.returncode == 0, pulled.stderr
    result = json.loads(pulled.stdout)
    projector = result["projector"]
    assert projector["model"] == f"{OPEN_4B.name} vision projector"
    assert projector["verification"]["verified"]
    assert projector["verification"]["projector_of"] == OPEN_4B.name
    assert projector["verification"]["sha256"] == sha256_of(files["projector"])
    assert result["warning"] is None


def test_no_mmproj_leaves_the_projector(user, fake):
    pulled = user.borealis("pull", "4b", "--variant", "open", "--no-mmproj")
    assert pulled.returncode == 0, pulled.stderr
    assert "vision projector" not in pulled.stdout
    assert cdn_gets(fake) == 1 and not resolved(fake, PROJECTOR_FILE)


def test_a_text_only_size_fetches_no_projector(user, fake, files, tmp_path):
    model = get_model("1b", "open")
    weights = make_gguf(tmp_path / "1b.gguf", layers=model.shape.layers).read_bytes()
    fake.add(model.gguf_repo, model.gguf_filename(), weights)
    fake.add(model.gguf_repo, "mmproj-F16.gguf", files["projector"])  # even if listed
    pulled = user.borealis("pull", "1b", "--variant", "open")
    assert pulled.returncode == 0, pulled.stderr
    assert "projector" not in pulled.stdout + pulled.stderr
    assert cdn_gets(fake) == 1 and not resolved(fake, "mmproj-F16.gguf")


def test_a_vision_repo_without_a_projector_warns_and_pulls_the_model(user, fake, files):
    fake.add(OPEN_12B.gguf_repo, OPEN_12B.gguf_filename(),
             make_gguf(user.home.parent / "12b.gguf", layers=OPEN_12B.shape.layers).read_bytes())
    pulled = user.borealis("pull", "12b", "--variant", "open")
    assert pulled.returncode == 0, pulled.stderr
    assert f"{OPEN_12B.name}:Q4_K_M: downloaded" in pulled.stdout
    assert f"WARNING: {OPEN_12B.gguf_repo} lists no vision projector" in pulled.stderr
    assert "images will not work" in pulled.stderr
    assert user.cached(OPEN_12B, OPEN_12B.gguf_filename()) is not None


def test_a_projector_corrupted_on_the_way_fails_the_pull(tmp_path, files):
    corrupted = bytearray(files["projector"])
    corrupted[-100] ^= 0x01
    with FakeHub() as fake:
        fake.add(OPEN_4B.gguf_repo, MODEL_FILE, files["model"])
        fake.add(OPEN_4B.gguf_repo, PROJECTOR_FILE, files["projector"], served=bytes(corrupted))
        user = User(tmp_path / "user", fake.url)
        pulled = user.borealis("pull", "4b", "--variant", "open")
    assert pulled.returncode == 1
    assert PROJECTOR_FILE in pulled.stderr and "run the same command again" in pulled.stderr
    assert sha256_of(files["projector"]) in pulled.stderr
    assert user.cached(OPEN_4B, MODEL_FILE) is not None  # the model stays, verified
    assert user.cached(OPEN_4B, PROJECTOR_FILE) is None


def test_another_models_projector_in_the_repo_fails_the_pull(tmp_path, files):
    with FakeHub() as fake:
        fake.add(OPEN_4B.gguf_repo, MODEL_FILE, files["model"])
        fake.add(OPEN_4B.gguf_repo, PROJECTOR_FILE, files["projector 12b"])
        user = User(tmp_path / "user", fake.url)
        pulled = user.borealis("pull", "4b", "--variant", "open")
    assert pulled.returncode == 1
    assert "projects to 3840, borealis-open-4b's hidden size is 2560" in pulled.stdout
    assert "not what the catalog describes" in pulled.stderr


def test_an_interrupted_projector_download_resumes(tmp_path, files):
    from huggingface_hub.constants import DOWNLOAD_CHUNK_SIZE as chunk

    big = make_projector(tmp_path / "big.gguf", nbytes=chunk + chunk // 2).read_bytes()
    with FakeHub() as fake:
        fake.add(OPEN_4B.gguf_repo, MODEL_FILE, files["model"])
        fake.add(OPEN_4B.gguf_repo, PROJECTOR_FILE, big)
        user = User(tmp_path / "user", fake.url)
        assert user.borealis("pull", "4b", "--variant", "open", "--no-mmproj").returncode == 0
        fake.cut_next_download(after=chunk + 1000)  # the projector's download
        broken = user.borealis("pull", "4b", "--variant", "open")
        assert broken.returncode == 1
        assert f"the download of {PROJECTOR_FILE} broke off after {chunk:,}" in broken.stderr
        listed = json.loads(user.borealis("list", "--local", "--json").stdout)["files"]
        assert [(f["name"], f["state"]) for f in listed] == [
            (f"{OPEN_4B.name}:Q4_K_M", "verified"),
            (f"{OPEN_4B.name} vision projector", "partial"),
        ]
        fake.restore()
        resumed = user.borealis("pull", "4b", "--variant", "open")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{OPEN_4B.name} vision projector: resumed at byte {chunk:,}" in resumed.stdout
    assert user.cached(OPEN_4B, PROJECTOR_FILE).read_bytes() == big


def test_offline_the_projector_on_disk_is_used(user, fake):
    assert user.borealis("pull", "4b", "--variant", "open").returncode == 0
    asked = len(fake.requests)
    offline = user.borealis("pull", "4b", "--variant", "open", HF_HUB_OFFLINE="1")
    assert offline.returncode == 0, offline.stderr
    assert f"{OPEN_4B.name} vision projector: already here" in offline.stdout
    assert offline.stdout.count("sha256     ok") == 2 and len(fake.requests) == asked

    empty = User(user.home.parent / "other", fake.url)
    assert empty.borealis("pull", "4b", "--variant", "open", "--no-mmproj").returncode == 0
    alone = empty.borealis("pull", "4b", "--variant", "open", HF_HUB_OFFLINE="1")
    assert alone.returncode == 0
    assert "no vision projector for borealis-open-4b is on this machine" in alone.stderr


def test_pull_into_a_local_dir_puts_the_projector_beside_the_model(user, tmp_path, files):
    folder = tmp_path / "mine"
    pulled = user.borealis("pull", "4b", "--variant", "open", "--local-dir", str(folder))
    assert pulled.returncode == 0, pulled.stderr
    assert (folder / PROJECTOR_FILE).read_bytes() == files["projector"]
    assert find_projector(folder / MODEL_FILE) == folder / PROJECTOR_FILE


# -- verify and list --local -------------------------------------------------------------


def test_verify_shows_the_projector_and_fails_when_it_is_damaged(user, files):
    assert user.borealis("pull", "4b", "--variant", "open").returncode == 0
    checked = user.borealis("verify", OPEN_4B.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "  projector  the vision projector of borealis-open-4b:" in checked.stdout
    assert f"    sha256     ok {sha256_of(files['projector'])}" in checked.stdout
    as_json = json.loads(user.borealis("verify", OPEN_4B.name, "--json").stdout)
    assert as_json["verified"] and as_json["projector"]["verified"]

    flip_a_byte(user.cached(OPEN_4B, PROJECTOR_FILE).resolve(), offset=1000)
    damaged = user.borealis("verify", OPEN_4B.name)
    assert damaged.returncode == 1
    assert "    sha256     MISMATCH" in damaged.stdout and "NOT verified" in damaged.stdout
    alone = user.borealis("verify", str(user.cached(OPEN_4B, PROJECTOR_FILE)))
    assert alone.returncode == 1 and "vision projector (mmproj) of borealis-open-4b" in \
        alone.stdout


def test_verify_of_a_vision_model_without_its_projector_says_images_will_not_work(user):
    assert user.borealis("pull", "4b", "--variant", "open", "--no-mmproj").returncode == 0
    checked = user.borealis("verify", OPEN_4B.name)
    assert checked.returncode == 0
    assert "projector  none on this machine: images will not work " \
           "(`borealis pull 4b --variant open` fetches it)" in checked.stdout


def test_list_local_names_the_projector_and_its_model(user, tmp_path, files):
    assert user.borealis("pull", "4b", "--variant", "open").returncode == 0
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / "mmproj-gemma3-12b-F16.gguf").write_bytes(files["projector 12b"])
    (models_dir / "mmproj-something-else.gguf").write_bytes(
        make_projector(tmp_path / "x.gguf", projection_dim=640).read_bytes())
    env = {"BOREALIS_MODELS": str(models_dir)}
    listed = json.loads(user.borealis("list", "--local", "--json", **env).stdout)
    rows = {(f["name"], f["where"]): (f["state"], f["projector_of"]) for f in listed["files"]}
    assert rows == {
        (f"{OPEN_4B.name}:Q4_K_M", "HF cache"): ("verified", None),
        (f"{OPEN_4B.name} vision projector", "HF cache"): ("verified", OPEN_4B.name),
        # Outside the cache, by its width: 3840 is 12b's, in either variant.
        ("borealis-12b or borealis-open-12b vision projector", "$BOREALIS_MODELS"):
            ("not verified", "borealis-12b or borealis-open-12b"),
    }  # fmt: skip
    table = user.borealis("list", "--local", **env).stdout
    assert f"{OPEN_4B.name} vision projector" in table


# -- on this machine ---------------------------------------------------------------------


def test_find_projector_takes_the_one_that_fits_the_model(tmp_path, files, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "no-cache"))
    folder = tmp_path / "models"
    folder.mkdir()
    for name in (MODEL_FILE, OPEN_12B.gguf_filename()):
        (folder / name).write_bytes(files["model"])
    (folder / "mmproj-a-F16.gguf").write_bytes(files["projector 12b"])
    (folder / "mmproj-b-F16.gguf").write_bytes(files["projector"])
    assert find_projector(folder / MODEL_FILE) == folder / "mmproj-b-F16.gguf"
    assert find_projector(folder / OPEN_12B.gguf_filename()) == folder / "mmproj-a-F16.gguf"
    # A second fitting one whose name holds the model's name comes first.
    (folder / f"mmproj-{OPEN_4B.name}-F16.gguf").write_bytes(files["projector"])
    assert find_projector(folder / MODEL_FILE) == folder / f"mmproj-{OPEN_4B.name}-F16.gguf"
    # Text-only sizes take none; a partial or broken file is never one.
    text_only = folder / get_model("1b", "open").gguf_filename()
    text_only.write_bytes(files["model"])
    assert find_projector(text_only) is None
    other = tmp_path / "other"
    other.mkdir()
    (other / MODEL_FILE).write_bytes(files["model"])
    (other / "mmproj-F16.gguf").write_bytes(files["projector"][:5000])
    assert find_projector(other / MODEL_FILE) is None


def test_find_projector_reads_the_width_of_a_file_outside_the_catalog(tmp_path, gemma_gguf):
    from borealis_local.bench.synth import synthesize_projector

    link = tmp_path / "gemma-3-270m-q4_k_m.gguf"
    link.symlink_to(gemma_gguf)
    assert find_projector(link) is None
    wrong = make_projector(tmp_path / "mmproj-wide.gguf", projection_dim=2560)
    assert find_projector(link) is None and wrong.exists()
    synthetic = synthesize_projector(tmp_path, 640, layers=1)
    assert find_projector(link) is None and synthetic.exists()  # random weights: never found
    fitting = make_projector(tmp_path / "mmproj-stand-in-F16.gguf", projection_dim=640)
    assert find_projector(link) == fitting
    from borealis_local.runtime.resolve import find_local_projector

    assert find_local_projector(link) == fitting


def test_find_projector_looks_in_the_hub_cache_for_a_catalog_model(user, tmp_path, monkeypatch):
    assert user.borealis("pull", "4b", "--variant", "open").returncode == 0
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(user.hf_cache))
    elsewhere = tmp_path / "copy"
    elsewhere.mkdir()
    (elsewhere / MODEL_FILE).write_bytes(user.cached(OPEN_4B, MODEL_FILE).read_bytes())
    assert find_projector(elsewhere / MODEL_FILE) == user.cached(OPEN_4B, PROJECTOR_FILE)


# -- presets, Modelfiles, Ollama -----------------------------------------------------------


def test_the_committed_presets_say_hf_repo_brings_the_projector():
    presets = llama_server_presets()
    assert "hf-repo also fetches the repo's vision projector (mmproj)" in presets
    assert "no-mmproj = true" in presets and "\nmmproj =" not in presets


def test_a_local_preset_carries_the_projector(tmp_path, files):
    model = tmp_path / MODEL_FILE
    model.write_bytes(files["model"])
    projector = tmp_path / PROJECTOR_FILE
    projector.write_bytes(files["projector"])
    section = hub.llama_server_preset(OPEN_4B, "Q4_K_M", model)
    assert section.startswith(f"[{OPEN_4B.name}]\nmodel = {model}\nmmproj = {projector}\n")
    text_only = get_model("270m", "open")
    assert "mmproj" not in hub.llama_server_preset(text_only, "Q4_K_M", model)


def test_a_modelfile_from_local_files_takes_the_projector_as_a_second_from(tmp_path):
    text = render_modelfile(OPEN_4B, from_path=tmp_path / MODEL_FILE,
                            mmproj=tmp_path / PROJECTOR_FILE)
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert froms == [f"FROM {tmp_path / MODEL_FILE}", f"FROM {tmp_path / PROJECTOR_FILE}"]
    assert "the second FROM is the model's vision projector" in text
    assert [p for p in lint_modelfile(text) if p.severity == "error"] == []
    without = render_modelfile(OPEN_4B, from_path=tmp_path / MODEL_FILE)
    assert "No vision projector was found beside the GGUF" in without
    committed = render_modelfile(OPEN_4B)
    assert "never beside a FROM of the hub" in committed
    with pytest.raises(Exception, match="text-only"):
        render_modelfile(get_model("1b"), from_path=tmp_path / "x.gguf", mmproj="p.gguf")
    with pytest.raises(Exception, match="local model file"):
        render_modelfile(OPEN_4B, mmproj=tmp_path / PROJECTOR_FILE)


def test_borealis_modelfile_from_finds_the_projector_beside_the_file(tmp_path, files):
    (tmp_path / MODEL_FILE).write_bytes(files["model"])
    (tmp_path / PROJECTOR_FILE).write_bytes(files["projector"])
    user = User(tmp_path / "user", "http://127.0.0.1:9")
    made = user.borealis("modelfile", "4b", "--variant", "open", "--from",
                         str(tmp_path / MODEL_FILE))
    assert made.returncode == 0, made.stderr
    assert f"FROM {tmp_path / PROJECTOR_FILE}\n" in made.stdout
    plain = user.borealis("modelfile", "4b", "--variant", "open", "--from",
                          str(tmp_path / MODEL_FILE), "--no-mmproj")
    assert f"FROM {tmp_path / PROJECTOR_FILE}" not in plain.stdout
    (tmp_path / "p12.gguf").write_bytes(files["projector 12b"])
    wrong = user.borealis("modelfile", "4b", "--variant", "open", "--from",
                          str(tmp_path / MODEL_FILE), "--mmproj", str(tmp_path / "p12.gguf"))
    assert wrong.returncode == 1 and "does not fit borealis-open-4b" in wrong.stderr
    text_only = user.borealis("modelfile", "1b", "--from", str(tmp_path / MODEL_FILE),
                              "--mmproj", str(tmp_path / PROJECTOR_FILE))
    assert text_only.returncode == 1 and "text-only" in text_only.stderr


def test_create_uploads_the_projector_and_ollama_makes_it_a_projector_layer(
    user, go_renderer, tmp_path
):
    from ollama_double import OllamaDouble

    assert user.borealis("pull", "4b", "--variant", "open").returncode == 0
    model = user.cached(OPEN_4B, MODEL_FILE)
    with OllamaDouble(go_renderer, home=tmp_path / "ollama") as ollama:
        created = user.borealis("create", "4b", "--variant", "open", "--from", str(model),
                                OLLAMA_HOST=ollama.url)
        assert created.returncode == 0, created.stderr
        (stored,) = ollama.models.values()
        projector = user.cached(OPEN_4B, PROJECTOR_FILE).read_bytes()
        assert stored.projectors == [f"sha256:{sha256_of(projector)}"]
        (create,) = ollama.requests_to("/api/create")
        assert sorted(create.body["files"]) == sorted([MODEL_FILE, PROJECTOR_FILE])

        text_only = user.borealis("create", "4b", "--variant", "open", "--from", str(model),
                                  "--no-mmproj", "--name", "plain:4b", OLLAMA_HOST=ollama.url)
        assert text_only.returncode == 0, text_only.stderr
        assert ollama.models["plain:4b"].projectors == []


def test_create_refuses_a_projector_that_does_not_fit(user, tmp_path, files):
    (tmp_path / MODEL_FILE).write_bytes(files["model"])
    (tmp_path / "p12.gguf").write_bytes(files["projector 12b"])
    refused = user.borealis("create", "4b", "--variant", "open", "--from",
                            str(tmp_path / MODEL_FILE), "--mmproj", str(tmp_path / "p12.gguf"))
    assert refused.returncode == 1
    assert "does not fit borealis-open-4b" in refused.stderr and "projects to 3840" in \
        refused.stderr
    hub_only = user.borealis("create", "4b", "--mmproj", str(tmp_path / "p12.gguf"))
    assert hub_only.returncode == 1 and "--from FILE.gguf" in hub_only.stderr


# -- signatures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chain():
    pytest.importorskip("cryptography")
    from test_signing import make_chain

    return make_chain()


def signed_vision_repo(fake: FakeHub, chain, files: dict[str, bytes], listed: dict[str, bytes]):
    from test_signing import manifest_for

    fake.add(OPEN_4B.gguf_repo, MODEL_FILE, files["model"])
    fake.add(OPEN_4B.gguf_repo, PROJECTOR_FILE, files["projector"])
    manifest = manifest_for(listed)
    fake.add(OPEN_4B.gguf_repo, "signing/SHA256SUMS", manifest)
    fake.add(OPEN_4B.gguf_repo, "signing/SHA256SUMS.sig", chain.sign(manifest))
    fake.add(OPEN_4B.gguf_repo, "signing/chain.pem", chain.pem())


def test_the_projector_is_checked_against_the_signed_manifest(tmp_path, files, chain):
    with FakeHub() as fake:
        signed_vision_repo(fake, chain, files, {MODEL_FILE: files["model"],
                                                PROJECTOR_FILE: files["projector"]})
        user = User(tmp_path / "user", fake.url)
        pulled = user.borealis("pull", "4b", "--variant", "open")
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert pulled.stdout.count("signature  verified: signed by CN=Borealis Signing") == 2


def test_a_projector_the_manifest_does_not_list_fails_the_pull(tmp_path, files, chain):
    with FakeHub() as fake:
        signed_vision_repo(fake, chain, files, {MODEL_FILE: files["model"]})
        user = User(tmp_path / "user", fake.url)
        pulled = user.borealis("pull", "4b", "--variant", "open")
    assert pulled.returncode == 1
    assert f"does not list {PROJECTOR_FILE}" in pulled.stdout
    assert f"{PROJECTOR_FILE} matches the hub's hash, but the repo's signature does not " \
           "hold (listing check" in pulled.stderr
