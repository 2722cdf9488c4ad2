"""A node's signing identity: the certificate chain and key its Content Credentials are signed with.

`vortex keys init DIR` writes a DEVELOPMENT identity: `ca.pem` (a local CA, the trust anchor to
hand to verifiers), `node.pem` (the node's ES256 P-256 leaf, then the CA: leaf first, as C2PA
wants) and `node.key` (mode 600). c2pa-rs refuses a self-signed leaf, so the leaf is issued by the
CA, with keyUsage digitalSignature and EKU emailProtection (DESIGN.md "Provenance: facts").
Production takes an operator's chain and key (config `signing: {cert_chain, key, tsa_url}`).

`load_identity` checks a chain and key before anything is made: present, readable, parsable, the
key matching the leaf, every certificate inside its validity. The key's bytes are never logged or
put in an error message.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import VortexError

CA_FILE, CHAIN_FILE, KEY_FILE = "ca.pem", "node.pem", "node.key"
DEV_NOTICE = "DEVELOPMENT identity: a local CA made on this machine; production takes an operator's chain and key"
_CA_DAYS, _LEAF_DAYS = 3650, 825  # a development CA outlives its leaves; 825 days is the CA/B leaf limit


class SigningKeyError(VortexError):
    """The signing chain or key cannot be used: names the flag or file and why."""


@dataclass(frozen=True)
class Identity:
    """A signing chain (PEM, leaf first) and its private key (PEM); `where` says where they came from."""

    chain_pem: bytes
    key_pem: bytes
    where: str  # e.g. "--sign /keys" or "development key in ~/.cache/vortex/signing"
    subject: str
    development: bool
    tsa_url: Optional[str] = None

    def __repr__(self) -> str:  # the key's bytes never reach a log line or a traceback's locals
        return f"Identity(subject={self.subject!r}, where={self.where!r}, development={self.development})"


def init_keys(folder: Path, *, node_name: str = "vortex-node", force: bool = False) -> dict[str, Path]:
    """Write a development CA, a node chain and its key into `folder`; refuse to overwrite unless `force`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"ca": folder / CA_FILE, "chain": folder / CHAIN_FILE, "key": folder / KEY_FILE}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not force:
        raise SigningKeyError(f"'{existing[0]}' exists; keys init does not overwrite an identity (remove it first)")
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)  # a little slack for clock skew

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vortex development"),
                         x509.NameAttribute(NameOID.COMMON_NAME, f"{node_name} development CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now)
          .not_valid_after(now + dt.timedelta(days=_CA_DAYS))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))

    key = ec.generate_private_key(ec.SECP256R1())  # ES256
    leaf_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vortex development"),
                           x509.NameAttribute(NameOID.COMMON_NAME, node_name)])
    leaf = (x509.CertificateBuilder().subject_name(leaf_name).issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=_LEAF_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))

    pem = serialization.Encoding.PEM
    _write(paths["ca"], ca.public_bytes(pem), 0o644)
    _write(paths["chain"], leaf.public_bytes(pem) + ca.public_bytes(pem), 0o644)
    _write(paths["key"], key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), 0o600)
    return paths


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)  # created with its mode: never world-readable
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_identity(chain: Path, key: Path, *, where: str, development: bool = False,
                  tsa_url: Optional[str] = None) -> Identity:
    """Read and check a chain and key; `where` names the flag or setting in every error."""
    chain_pem = _read(chain, where, "certificate chain")
    key_pem = _read(key, where, "key")
    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
    except ValueError:
        raise SigningKeyError(f"{where}: '{chain}' holds no PEM certificate chain") from None
    try:
        private = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise SigningKeyError(f"{where}: '{key}' is not an unencrypted PEM private key") from None
    if not isinstance(private, ec.EllipticCurvePrivateKey) or private.curve.name != "secp256r1":
        raise SigningKeyError(f"{where}: '{key}' must be an EC P-256 key (ES256)")
    leaf = certs[0]
    if leaf.public_key().public_numbers() != private.public_key().public_numbers():
        raise SigningKeyError(f"{where}: '{key}' does not belong to the first certificate of '{chain}' (leaf first)")
    now = dt.datetime.now(dt.timezone.utc)
    for cert in certs:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            name = cert.subject.rfc4514_string()
            raise SigningKeyError(f"{where}: certificate '{name}' in '{chain}' is valid from "
                                  f"{cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d}: "
                                  f"{'expired' if now > cert.not_valid_after_utc else 'not yet valid'}")
    if len(certs) == 1 and leaf.issuer == leaf.subject:
        raise SigningKeyError(f"{where}: '{chain}' is a self-signed leaf, which C2PA refuses; "
                              "give the leaf and its CA (vortex keys init DIR makes a development pair)")
    return Identity(chain_pem=chain_pem, key_pem=key_pem, where=where, subject=leaf.subject.rfc4514_string(),
                    development=development, tsa_url=tsa_url)


def _read(path: Path, where: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise SigningKeyError(f"{where}: the {what} '{path}' does not exist") from None
    except OSError as exc:
        raise SigningKeyError(f"{where}: cannot read the {what} '{path}': {exc.strerror or exc}") from None


def development_identity(folder: Path) -> Identity:
    """This node's own development identity in `folder`, created on first use."""
    folder = Path(folder)
    if not (folder / CHAIN_FILE).exists() and not (folder / KEY_FILE).exists():
        try:
            init_keys(folder, node_name=f"vortex-node-{os.uname().nodename}")
        except OSError as exc:
            raise SigningKeyError(f"cannot create the development signing key in '{folder}': "
                                  f"{exc.strerror or exc} (give --sign DIR, or --no-sign)") from None
    return load_identity(folder / CHAIN_FILE, folder / KEY_FILE, where=f"development key in {folder}",
                         development=True)
