"""The National Library's signature scheme, checked end to end on chains made here.

Each test makes a CA -> intermediate -> leaf chain and signatures with `cryptography`
(nothing of the National Library's is published to test against), and FakeHub serves
them as a repo's `signing/` folder, so `borealis pull` and `verify` run as a user runs
them. Every way a signature can be wrong gives its own verdict, naming the check.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import pytest
from hub_support import FakeHub, make_gguf, sha256_of
from test_hub import OPEN, OPEN_FILE, User

pytest.importorskip("cryptography")
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

from borealis_local.catalog import get_model  # noqa: E402
from borealis_local.hub import signing  # noqa: E402

NOW = dt.datetime.now(dt.UTC)
DAY = dt.timedelta(days=1)


def name(common: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Library"),
        x509.NameAttribute(NameOID.COMMON_NAME, common),
    ])  # fmt: skip


def certificate(subject, key, issuer, issuer_key, *, ca: bool, start=NOW - DAY, end=NOW + 30 * DAY,
                usage=ExtendedKeyUsageOID.CODE_SIGNING):  # fmt: skip
    builder = (
        x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )  # fmt: skip
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class Chain:
    root: x509.Certificate
    intermediate: x509.Certificate
    leaf: x509.Certificate
    leaf_key: rsa.RSAPrivateKey

    def pem(self, *certificates) -> bytes:
        chosen = certificates or (self.leaf, self.intermediate, self.root)
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chosen)

    @property
    def root_sha256(self) -> str:
        return self.root.fingerprint(hashes.SHA256()).hex()

    def sign(self, data: bytes, *, pss: bool = False, key=None) -> bytes:
        key = key or self.leaf_key
        scheme = (padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32) if pss
                  else padding.PKCS1v15())
        return key.sign(data, scheme, hashes.SHA256())


def make_chain(common: str = "Borealis Signing", **leaf) -> Chain:
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    middle_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # RSA-4096 like the National Library's: its signatures are 512 bytes.
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    root = certificate("Test Root CA", root_key, "Test Root CA", root_key, ca=True)
    middle = certificate("Test Intermediate", middle_key, "Test Root CA", root_key, ca=True)
    leaf_cert = certificate(common, leaf_key, "Test Intermediate", middle_key, ca=False, **leaf)
    return Chain(root, middle, leaf_cert, leaf_key)


@pytest.fixture(scope="module")
def chain() -> Chain:
    return make_chain()


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> bytes:
    return make_gguf(tmp_path_factory.mktemp("gguf") / "weights.gguf").read_bytes()


def manifest_for(files: dict[str, bytes]) -> bytes:
    return "".join(f"{sha256_of(data)}  {name}\n" for name, data in files.items()).encode()


def signed_repo(fake: FakeHub, chain: Chain, weights: bytes, *, manifest: bytes | None = None,
                signature: bytes | None = None, chain_pem: bytes | None = None,
                repo: str = OPEN.gguf_repo) -> bytes:
    """A repo with the GGUF and a signing/ folder; returns the manifest served."""
    fake.add(repo, OPEN_FILE, weights)
    manifest = manifest if manifest is not None else manifest_for({OPEN_FILE: weights})
    fake.add(repo, "signing/SHA256SUMS", manifest)
    fake.add(repo, "signing/SHA256SUMS.sig", signature or chain.sign(manifest))
    if chain_pem != b"":
        fake.add(repo, "signing/chain.pem", chain_pem or chain.pem())
    return manifest


@pytest.fixture
def fake():
    with FakeHub() as hub:
        yield hub


@pytest.fixture
def user(tmp_path, fake) -> User:
    return User(tmp_path / "user", fake.url)


def verify_json(user: User, *args: str) -> tuple[int, dict]:
    result = user.borealis("verify", *args, "--json")
    return result.returncode, json.loads(result.stdout)


def pull(user: User) -> tuple[int, str]:
    result = user.borealis("pull", "270m", "--variant", "open")
    return result.returncode, result.stdout + result.stderr


# -- through the commands a user runs ---------------------------------------------------


def test_a_signed_repo_verifies_and_its_root_is_pinned_on_first_use(user, fake, chain, weights):
    signed_repo(fake, chain, weights)
    status, output = pull(user)
    assert status == 0, output
    assert "signature  verified: signed by CN=Borealis Signing,O=Test Library" in output
    assert "(RSA PKCS#1 v1.5, SHA-256)" in output and chain.root_sha256 in output
    assert "root pinned now (first use" in output
    status, result = verify_json(user, OPEN.name)
    check = result["signature_check"]
    assert status == 0 and result["verified"] and check["status"] == "verified"
    assert check["root_sha256"] == chain.root_sha256 and check["root_pinned"].startswith(
        "root pinned on first use")
    assert len(chain.sign(b"x")) == 512  # the scheme's RSA-4096 signature


def test_a_pss_signature_verifies_and_says_so(user, fake, chain, weights):
    manifest = manifest_for({OPEN_FILE: weights})
    signed_repo(fake, chain, weights, manifest=manifest, signature=chain.sign(manifest, pss=True))
    status, output = pull(user)
    assert status == 0, output
    assert "verified: signed by" in output and "(RSA-PSS, SHA-256)" in output


def test_a_tampered_manifest_fails_the_signature_check(user, fake, chain, weights):
    manifest = manifest_for({OPEN_FILE: weights})
    signed_repo(fake, chain, weights, manifest=manifest + b"0" * 64 + b"  extra.gguf\n",
                signature=chain.sign(manifest))
    status, output = pull(user)
    assert status == 1 and "NOT verified: signature check failed" in output
    assert "repo's signature does not hold (signature check" in output


def test_a_signature_by_another_key_fails(user, fake, chain, weights):
    manifest = manifest_for({OPEN_FILE: weights})
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signed_repo(fake, chain, weights, signature=chain.sign(manifest, key=other))
    status, result = verify_json(user, *pulled_path(user, fake))
    assert status == 1 and result["signature_check"]["failed_check"] == "signature"


def test_a_missing_chain_names_what_is_there(user, fake, chain, weights):
    signed_repo(fake, chain, weights, chain_pem=b"")
    status, result = verify_json(user, *pulled_path(user, fake))
    check = result["signature_check"]
    assert status == 1 and check["failed_check"] == "files"
    assert "signing/SHA256SUMS, signing/SHA256SUMS.sig" in check["summary"]
    assert "but no certificate chain" in check["summary"]


def test_a_file_not_in_the_manifest_fails_the_listing_check(user, fake, chain, weights):
    signed_repo(fake, chain, weights, manifest=manifest_for({"other.gguf": weights}))
    status, result = verify_json(user, *pulled_path(user, fake))
    check = result["signature_check"]
    assert status == 1 and check["failed_check"] == "listing"
    assert f"does not list {OPEN_FILE}" in check["summary"]


def test_a_file_whose_hash_differs_from_the_manifest_fails_the_listing_check(
    user, fake, chain, weights
):
    signed_repo(fake, chain, weights, manifest=manifest_for({OPEN_FILE: b"other bytes"}))
    status, result = verify_json(user, *pulled_path(user, fake))
    check = result["signature_check"]
    assert status == 1 and check["failed_check"] == "listing"
    assert sha256_of(weights) in check["summary"] and sha256_of(b"other bytes") in check["summary"]


def test_a_changed_root_on_a_second_verify_fails_loudly(user, fake, chain, weights, tmp_path):
    signed_repo(fake, chain, weights)
    assert pull(user)[0] == 0  # pins the first root
    # Another Borealis repo, signed by a chain with another root.
    other, one_b = make_chain(), get_model("1b", "open")
    one_b_weights = make_gguf(tmp_path / "1b.gguf", layers=one_b.shape.layers).read_bytes()
    manifest = manifest_for({one_b.gguf_filename(): one_b_weights})
    fake.add(one_b.gguf_repo, one_b.gguf_filename(), one_b_weights)
    fake.add(one_b.gguf_repo, "signing/SHA256SUMS", manifest)
    fake.add(one_b.gguf_repo, "signing/SHA256SUMS.sig", other.sign(manifest))
    fake.add(one_b.gguf_repo, "signing/chain.pem", other.pem())
    result = user.borealis("pull", "1b", "--variant", "open")
    assert result.returncode == 1
    assert "NOT verified: root check failed" in result.stdout
    assert other.root_sha256 in result.stdout and chain.root_sha256 in result.stdout
    assert "WARNING: the signing root is not the one trusted before" in result.stderr
    # An explicit --trust-root of the new root is the way to accept it.
    accepted = user.borealis("verify", one_b.name, "--trust-root", other.root_sha256)
    assert accepted.returncode == 0, accepted.stdout
    assert "root given with --trust-root" in accepted.stdout


def test_trust_root_refuses_a_chain_with_another_root(user, fake, chain, weights):
    signed_repo(fake, chain, weights)
    status, output = pull(user)
    assert status == 0
    status, result = verify_json(user, OPEN.name, "--trust-root", "ab" * 32)
    assert status == 1 and result["signature_check"]["failed_check"] == "root"


def test_offline_nothing_is_fetched_and_the_verdict_says_so(user, fake, chain, weights):
    signed_repo(fake, chain, weights)
    assert pull(user)[0] == 0
    before = len(fake.requests)
    result = user.borealis("verify", OPEN.name, HF_HUB_OFFLINE="1")
    assert "signature  not checked: the hub could not be asked" in result.stdout
    assert len(fake.requests) == before


def pulled_path(user: User, fake: FakeHub) -> list[str]:
    """Pull the file with its verdict ignored (it may fail), and name it for verify."""
    user.borealis("pull", "270m", "--variant", "open")
    path = user.cached()
    assert path is not None, "the download itself must work"
    return [str(path)]


# -- the checks on their own --------------------------------------------------------------


def check(chain: Chain, manifest: bytes = b"", *, signature=None, chain_files=None, **kwargs):
    signature = signature if signature is not None else chain.sign(manifest)
    files = chain_files if chain_files is not None else [chain.pem()]
    return signing.check_signature(manifest, signature, files, **kwargs)


def test_an_expired_certificate_fails_the_validity_check():
    expired = make_chain(start=NOW - 60 * DAY, end=NOW - DAY)
    verdict = check(expired, b"manifest")
    assert verdict.failed_check == "validity" and "not now" in verdict.summary


def test_a_broken_chain_fails_the_chain_check(chain):
    verdict = check(chain, b"m", chain_files=[chain.pem(chain.leaf, chain.root)])
    assert verdict.failed_check == "chain" and "Test Intermediate" in verdict.summary
    stranger = make_chain()
    mixed = [chain.pem(chain.leaf, stranger.intermediate, stranger.root)]
    verdict = check(chain, b"m", chain_files=mixed)
    assert verdict.failed_check == "chain" and "is not signed by" in verdict.summary


def test_a_leaf_for_tls_servers_fails_the_usage_check():
    server = make_chain(usage=ExtendedKeyUsageOID.SERVER_AUTH)
    assert check(server, b"m").failed_check == "leaf usage"


def test_chains_in_any_order_and_der_files_parse(chain):
    der = [c.public_bytes(serialization.Encoding.DER)
           for c in (chain.root, chain.leaf, chain.intermediate)]
    assert check(chain, b"m", chain_files=der).verified
    shuffled = [chain.pem(chain.root, chain.intermediate), chain.pem(chain.leaf)]
    assert check(chain, b"m", chain_files=shuffled).verified
    assert check(chain, b"m", chain_files=[b"not a certificate"]).failed_check == "chain"


def test_the_manifest_is_read_as_sha256sum_writes_it():
    digest = "0" * 63 + "a"
    text = f"{digest}  borealis-4b-Q4_K_M.gguf\n{digest.upper()} *./signing/x\nnoise\n"
    assert signing.parse_manifest(text.encode()) == {
        "borealis-4b-Q4_K_M.gguf": digest, "signing/x": digest}


def test_signing_files_are_found_by_what_they_are():
    found = signing.SigningFiles.find(
        ["model.gguf", "signing/SHA256SUMS", "signing/SHA256SUMS.sig", "signing/nb-chain.pem"])
    assert (found.manifest, found.signature, found.chain) == (
        "signing/SHA256SUMS", "signing/SHA256SUMS.sig", ("signing/nb-chain.pem",))
    assert signing.SigningFiles.find(["model.gguf"]) is None
    assert signing.SigningFiles.find(["signing/README"]).missing == [
        "manifest (SHA256SUMS)", "signature", "certificate chain"]


# -- a whole downloaded repo ----------------------------------------------------------------


def repo_folder(root, chain: Chain, files: dict[str, bytes]):
    """A repo as `hf download` leaves it: its files, signing/, the hub's dotfiles."""
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    manifest = manifest_for(files)
    (root / "signing").mkdir()
    (root / "signing" / "SHA256SUMS").write_bytes(manifest)
    (root / "signing" / "SHA256SUMS.sig").write_bytes(chain.sign(manifest))
    (root / "signing" / "chain.pem").write_bytes(chain.pem())
    (root / ".gitattributes").write_text("*.gguf filter=lfs\n")
    return root


REPO_FILES = {"borealis-open-270m-Q4_K_M.gguf": b"q4 weights", "README.md": b"# Borealis\n",
              "mmproj/x.gguf": b"projector"}


def test_a_whole_repo_verifies_against_its_signed_manifest(tmp_path, chain):
    folder = repo_folder(tmp_path / "repo", chain, REPO_FILES)
    user = User(tmp_path / "user", "http://127.0.0.1:9")
    result = user.borealis("verify", "--repo", str(folder))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "files      3 listed and equal" in result.stdout and "verified" in result.stdout


def test_a_whole_repo_names_changed_missing_and_extra_files(tmp_path, chain):
    folder = repo_folder(tmp_path / "repo", chain, REPO_FILES)
    (folder / "README.md").write_bytes(b"# changed\n")
    (folder / "mmproj" / "x.gguf").unlink()
    (folder / "notes.txt").write_text("mine")
    user = User(tmp_path / "user", "http://127.0.0.1:9")
    status, result = verify_json(user, "--repo", str(folder))
    assert status == 1 and not result["verified"] and result["signature"]["status"] == "verified"
    assert [c["file"] for c in result["changed"]] == ["README.md"]
    assert result["changed"][0]["actual"] == sha256_of(b"# changed\n")
    assert result["missing"] == ["mmproj/x.gguf"] and result["extra"] == ["notes.txt"]
    assert result["matched"] == ["borealis-open-270m-Q4_K_M.gguf"]
    text = user.borealis("verify", "--repo", str(folder)).stdout
    assert "CHANGED  README.md" in text and "MISSING  mmproj/x.gguf" in text
    assert "EXTRA    notes.txt" in text


def test_a_repo_whose_manifest_does_not_verify_is_not_compared(tmp_path, chain):
    folder = repo_folder(tmp_path / "repo", chain, REPO_FILES)
    (folder / "signing" / "SHA256SUMS").write_bytes(manifest_for({"README.md": b"x"}))
    user = User(tmp_path / "user", "http://127.0.0.1:9")
    status, result = verify_json(user, "--repo", str(folder))
    assert status == 1 and result["signature"]["failed_check"] == "signature"
    assert result["matched"] == result["changed"] == result["missing"] == []


def test_an_unsigned_folder_is_said_to_be(tmp_path):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "model.gguf").write_bytes(b"x")
    user = User(tmp_path / "user", "http://127.0.0.1:9")
    result = user.borealis("verify", "--repo", str(tmp_path / "repo"))
    assert result.returncode == 1 and "unsigned: " in result.stdout
    both = user.borealis("verify", "x.gguf", "--repo", str(tmp_path / "repo"))
    assert both.returncode == 1 and "give one GGUF" in both.stderr
