"""Checking the National Library's signature over a repo's manifest of SHA-256 hashes.

The scheme, as a public scan of the hub's Borealis repos found it (July 2026): a
`signing/` folder with `SHA256SUMS.sig`, 512 bytes of headerless RSA-4096 signature,
next to an X.509 certificate chain; the manifest it signs is `SHA256SUMS` (sha256sum's
format). The exact names of the manifest and chain files are not published, so they are
found by what they are (`SigningFiles.find`), and what is there is reported when they
are not.

A signature is "verified" only when every check holds, in this order (a failure names
its check):

1. files: a manifest, its signature and at least one certificate are there;
2. chain: each certificate is signed by the next, issuers are CAs, the last is a
   self-signed root (PEM or DER, in one file or several, in any order);
3. validity: every certificate is within its validity period now;
4. leaf usage: the leaf may sign, where its key-usage extensions say so;
5. signature: it verifies over the manifest with the leaf's key (RSA PKCS#1 v1.5, then
   RSA-PSS, with SHA-256; ECDSA for EC keys; which held is said);
6. root: the root is the one pinned (`--trust-root SHA256`, or the first root seen:
   trust on first use, as the National Library publishes no fingerprint);
7. listing: the manifest lists the file with the SHA-256 computed here.

All cryptography is `cryptography`'s.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

CheckName = Literal[
    "files", "chain", "validity", "leaf usage", "signature", "root", "listing"
]  # fmt: skip
Status = Literal["verified", "failed", "not checked", "unsigned"]

SIGNING_DIR = "signing/"
MANIFEST_NAMES = ("SHA256SUMS", "SHA256SUMS.txt", "sha256sums", "sha256sums.txt")
SIGNATURE_SUFFIXES = (".sig", ".signature")
CERTIFICATE_SUFFIXES = (".pem", ".crt", ".cer", ".der", ".chain")
# Extended key usages that allow signing files (RFC 5280 code signing, RFC 9336
# document signing, and "any").
_SIGNING_USAGES = ("1.3.6.1.5.5.7.3.3", "1.3.6.1.5.5.7.3.36", "2.5.29.37.0")
_MANIFEST_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


@dataclass(frozen=True)
class SigningFiles:
    """The repo's signing files, found by what they are."""

    manifest: str | None
    signature: str | None
    chain: tuple[str, ...]
    present: tuple[str, ...]
    """Every file in `signing/`, for the report when something is missing."""

    @classmethod
    def find(cls, repo_files: Iterable[str]) -> SigningFiles | None:
        """None when the repo has no `signing/` folder (an unsigned repo)."""
        present = tuple(sorted(f for f in repo_files if f.startswith(SIGNING_DIR)))
        if not present:
            return None
        names = {f.removeprefix(SIGNING_DIR): f for f in present}
        manifest = next((names[n] for n in MANIFEST_NAMES if n in names), None)
        signature = None
        if manifest is not None:
            signature = next((manifest + s for s in SIGNATURE_SUFFIXES if manifest + s in present),
                             None)
        if signature is None:
            signature = next((f for f in present if f.endswith(SIGNATURE_SUFFIXES)), None)
        chain = tuple(f for f in present if f.lower().endswith(CERTIFICATE_SUFFIXES)
                      or "cert" in f.lower() or "chain" in f.lower())
        chain = tuple(f for f in chain if f not in (manifest, signature))
        return cls(manifest, signature, chain, present)

    @property
    def missing(self) -> list[str]:
        wanted = {"manifest (SHA256SUMS)": self.manifest, "signature": self.signature,
                  "certificate chain": self.chain}
        return [what for what, found in wanted.items() if not found]


@dataclass(frozen=True)
class SignatureCheck:
    """The verdict on a repo's signature, and what it established."""

    status: Status
    summary: str
    """One line for people: what held, or which check failed and why."""
    failed_check: CheckName | None = None
    signer: str | None = None
    """The leaf certificate's subject."""
    root_sha256: str | None = None
    """The SHA-256 fingerprint of the chain's root certificate."""
    method: str | None = None
    """Which signature scheme held, e.g. "RSA PKCS#1 v1.5, SHA-256"."""
    root_pinned: str | None = None
    """How the root is trusted: "pinned now (first use)", "pinned earlier", "--trust-root"."""
    manifest: Mapping[str, str] = field(default_factory=dict)
    """File name -> SHA-256, as the signed manifest lists them."""

    @property
    def verified(self) -> bool:
        return self.status == "verified"

    def to_dict(self) -> dict:
        return {
            "status": self.status, "summary": self.summary, "failed_check": self.failed_check,
            "signer": self.signer, "root_sha256": self.root_sha256, "method": self.method,
            "root_pinned": self.root_pinned,
        }  # fmt: skip


def failed(check: CheckName, why: str, **known) -> SignatureCheck:
    return SignatureCheck("failed", f"NOT verified: {check} check failed: {why}",
                          failed_check=check, **known)


def parse_manifest(data: bytes) -> dict[str, str]:
    """sha256sum's format: `HASH  NAME` or `HASH *NAME` per line; names as listed."""
    listed = {}
    for line in data.decode("utf-8", errors="replace").splitlines():
        match = _MANIFEST_LINE.match(line.strip())
        if match:
            listed[match.group(2).removeprefix("./")] = match.group(1).lower()
    return listed


def load_certificates(blobs: Iterable[bytes]) -> list:
    """Every certificate in the chain files, PEM (one or many per file) or DER."""
    from cryptography import x509

    certificates = []
    for blob in blobs:
        if b"-----BEGIN CERTIFICATE-----" in blob:
            certificates += x509.load_pem_x509_certificates(blob)
        else:
            certificates.append(x509.load_der_x509_certificate(blob))
    return certificates


def check_signature(
    manifest: bytes,
    signature: bytes,
    chain_files: Iterable[bytes],
    *,
    trusted_root: str | None = None,
    now: dt.datetime | None = None,
) -> SignatureCheck:
    """Checks 2 to 6 on the downloaded files. `trusted_root` is the pinned root's
    SHA-256 (explicit or from first use); None: nothing pinned yet. The caller pins on
    first use and runs the listing check (`check_listing`)."""
    from cryptography.hazmat.primitives import hashes

    now = now or dt.datetime.now(dt.UTC)
    try:
        certificates = load_certificates(chain_files)
    except ValueError as error:
        return failed("chain", f"a certificate file does not parse ({error})")
    if not certificates:
        return failed("chain", "the chain files hold no certificate")
    chain, problem = _ordered_chain(certificates)
    if problem:
        return failed("chain", problem)
    leaf, root = chain[0], chain[-1]
    known = {
        "signer": leaf.subject.rfc4514_string(),
        "root_sha256": root.fingerprint(hashes.SHA256()).hex(),
    }
    for certificate in chain:
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            return failed("validity", f"{certificate.subject.rfc4514_string()} is valid from "
                          f"{certificate.not_valid_before_utc:%Y-%m-%d} to "
                          f"{certificate.not_valid_after_utc:%Y-%m-%d}, not now", **known)
    usage_problem = _leaf_usage_problem(leaf)
    if usage_problem:
        return failed("leaf usage", usage_problem, **known)
    method = _verified_by(leaf.public_key(), signature, manifest)
    if method is None:
        return failed("signature", "the signature does not verify over the manifest with the "
                      "leaf certificate's key (tried RSA PKCS#1 v1.5 and PSS, and ECDSA, with "
                      "SHA-256): the manifest or the signature was changed, or another key "
                      "signed it", **known)
    if trusted_root is not None and known["root_sha256"] != trusted_root.lower():
        return failed("root", f"the chain's root is {known['root_sha256']}, but the trusted "
                      f"root is {trusted_root.lower()}: someone else's chain, or a new root "
                      "of the National Library's; check before trusting it (--trust-root SHA256)",
                      method=method, **known)
    return SignatureCheck("verified", f"verified: signed by {known['signer']} ({method}); "
                          f"root SHA-256 {known['root_sha256']}", method=method,
                          manifest=parse_manifest(manifest), **known)


def check_listing(check: SignatureCheck, filename: str, sha256: str) -> SignatureCheck:
    """Check 7: the signed manifest lists `filename` with this SHA-256."""
    if not check.verified:
        return check
    listed = check.manifest.get(filename)
    known = {"signer": check.signer, "root_sha256": check.root_sha256, "method": check.method,
             "root_pinned": check.root_pinned, "manifest": check.manifest}
    if listed is None:
        return failed("listing", f"the signed manifest does not list {filename}", **known)
    if listed != sha256:
        return failed("listing", f"the signed manifest gives {filename} the SHA-256 {listed}, "
                      f"the file here has {sha256}", **known)
    return check


def _ordered_chain(certificates: list) -> tuple[list, str | None]:
    """Leaf first, root last, each signed by the next; or a reason it is broken."""
    from cryptography import x509

    subjects = {c.subject for c in certificates}
    issued_below = {c.issuer for c in certificates if c.issuer != c.subject}
    leaves = [c for c in certificates if c.subject not in issued_below] or certificates[:1]
    chain = [leaves[0]]
    while chain[-1].issuer != chain[-1].subject:
        issuer = next((c for c in certificates if c.subject == chain[-1].issuer), None)
        if issuer is None or issuer in chain:
            where = "" if chain[-1].issuer in subjects else " (not in the chain files)"
            return chain, (f"no certificate of {chain[-1].issuer.rfc4514_string()}{where}, "
                           f"which issued {chain[-1].subject.rfc4514_string()}: the chain does "
                           "not reach a self-signed root")
        chain.append(issuer)
    from cryptography.exceptions import InvalidSignature

    for certificate, issuer in zip(chain, [*chain[1:], chain[-1]], strict=True):
        try:
            certificate.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError, TypeError) as error:
            return chain, (f"{certificate.subject.rfc4514_string()} is not signed by "
                           f"{issuer.subject.rfc4514_string()} ({type(error).__name__})")
    for issuer in chain[1:]:
        try:
            constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints)
        except x509.ExtensionNotFound:
            continue
        if not constraints.value.ca:
            return chain, f"{issuer.subject.rfc4514_string()} is not a CA, yet issued a certificate"
    return chain, None


def _leaf_usage_problem(leaf) -> str | None:
    from cryptography import x509

    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not (usage.digital_signature or usage.content_commitment):
        return "the leaf certificate's key usage allows neither digitalSignature nor nonRepudiation"
    try:
        extended = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    allowed = {oid.dotted_string for oid in extended}
    if not allowed & set(_SIGNING_USAGES):
        return (f"the leaf certificate's extended key usage ({', '.join(sorted(allowed))}) "
                "does not include code or document signing")
    return None


def _verified_by(public_key, signature: bytes, data: bytes) -> str | None:
    """The scheme under which `signature` verifies over `data`, or None."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    attempts = []
    if isinstance(public_key, rsa.RSAPublicKey):
        attempts.append(("RSA PKCS#1 v1.5, SHA-256",
                         lambda: public_key.verify(signature, data, padding.PKCS1v15(),
                                                   hashes.SHA256())))
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
        attempts.append(("RSA-PSS, SHA-256",
                         lambda: public_key.verify(signature, data, pss, hashes.SHA256())))
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        attempts.append(("ECDSA, SHA-256",
                         lambda: public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))))
    for method, attempt in attempts:
        try:
            attempt()
        except InvalidSignature:
            continue
        return method
    return None
