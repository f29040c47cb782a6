"""The mesh's workload identities: a root CA made fresh for every bed and the certificates it issues, as Istio's
CA (istiod's Citadel) issues them to each proxy.

Faithful to Istio's defaults (istio/istio security/pkg/pki/util generate_cert.go, pkg/spiffe/spiffe.go):
- the identity is a SPIFFE id `spiffe://<trust domain>/ns/<namespace>/sa/<service account>` in the certificate's
  URI SAN, with an empty subject; trust domain `cluster.local`;
- RSA 2048 keys (Istio's default; ECDSA is an option there), 24 h workload certificates, signed by the root.
Not faithful: the key pairs are made by the harness and the files handed to the proxy, where Istio's proxy
agent makes its key, sends a CSR to istiod and serves the result to Envoy over SDS. What Envoy does with the
certificate on the data path (handshakes, verification) is the same.

Nothing is written outside the bed's folder (/run/vmnetbench/<run id>/bed/), which the bed removes at teardown.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

TRUST_DOMAIN = "cluster.local"
NAMESPACE = "vmnb"
KEY_BITS = 2048
WORKLOAD_TTL = datetime.timedelta(hours=24)


def spiffe_id(service_account: str, namespace: str = NAMESPACE) -> str:
    return f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{service_account}"


@dataclass(frozen=True)
class WorkloadCert:
    """One proxy's identity, as files its proxy reads."""

    spiffe_id: str
    cert: Path
    key: Path
    root: Path


class MeshCA:
    """A root certificate and key, kept in memory; `issue` writes a workload's files into `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # private from the start: keys are written here
        folder.chmod(0o700)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        now = datetime.datetime.now(datetime.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, TRUST_DOMAIN)])  # istiod's self-signed root
        self._root = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.root_path = folder / "root-cert.pem"
        self.root_path.write_bytes(self._root.public_bytes(serialization.Encoding.PEM))
        self.root_path.chmod(0o644)

    def issue(self, service_account: str, *, owner_uid: int, folder: Path | None = None) -> WorkloadCert:
        """A workload certificate for `service_account`, its files readable by `owner_uid` (the proxy's user);
        `folder`: a folder of that proxy's own, with a copy of the root, when another proxy of the bed runs as a
        different user (the CA's folder is private to one user at a time)."""
        identity = spiffe_id(service_account)
        key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self._root.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + WORKLOAD_TTL)
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_encipherment=True,
                    key_cert_sign=False,
                    content_commitment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        target, root = self.folder, self.root_path
        if folder is not None:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder.chmod(0o700)
            target, root = folder, folder / "root-cert.pem"
            root.write_bytes(self.root_path.read_bytes())
            root.chmod(0o644)
        cert_path, key_path = target / f"{service_account}-cert.pem", target / f"{service_account}-key.pem"
        write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM), owner_uid)
        write_private(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            owner_uid,
        )
        os.chown(target, owner_uid, -1)  # the proxy's user reaches its files; nobody else lists the folder
        return WorkloadCert(identity, cert_path, key_path, root)


def write_private(path: Path, data: bytes, owner_uid: int) -> None:
    """A file only `owner_uid` (and root) can read at every moment: created 0600 (never through a wider mode
    narrowed afterwards), owned before its content is written, never through a symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(fd, 0o600)  # a file that existed keeps its old mode through O_CREAT
        os.fchown(fd, owner_uid, -1)
        out.write(data)
