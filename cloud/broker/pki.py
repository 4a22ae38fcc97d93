"""The project's own certificate authority: a CA, the broker's server certificate and per-gateway client certificates.

EC P-256 keys (small, fast on an ARM gateway), SHA-256 signatures, PEM files. The CA key never leaves the
machine where ``xiaoqu cloud broker init`` ran; gateways get their own key, their certificate and the CA
certificate (to check the broker).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 10 * 365
LEAF_DAYS = 2 * 365


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write a secret file that is never readable by others, even for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, mode)
    tmp.replace(path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "xiaoqu"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )


def _load_ca(ca: CertPair) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{ca.key}: expected an EC private key")
    return cert, key


def make_ca(ca: CertPair, common_name: str = "xiaoqu broker CA", now: datetime | None = None) -> None:
    """A self-signed CA (key 0600) that signs the broker's and the gateways' certificates."""
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private(ca.key, _key_pem(key))
    ca.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _issue(
    ca: CertPair,
    out: CertPair,
    common_name: str,
    usage: x509.ObjectIdentifier,
    hostnames: list[str] | None = None,
    key_mode: int = 0o600,
    now: datetime | None = None,
) -> None:
    now = now or datetime.now(UTC)
    ca_cert, ca_key = _load_ca(ca)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if hostnames:
        names: list[x509.GeneralName] = []
        for h in hostnames:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(h)))
            except ValueError:
                names.append(x509.DNSName(h))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    write_private(out.key, _key_pem(key), key_mode)
    out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def issue_server(ca: CertPair, out: CertPair, hostnames: list[str], key_mode: int = 0o640) -> None:
    """The broker's certificate, valid for ``hostnames`` (DNS names or IP addresses the gateways dial)."""
    if not hostnames:
        raise ValueError("the broker certificate needs at least one host name or IP address")
    _issue(ca, out, hostnames[0], ExtendedKeyUsageOID.SERVER_AUTH, hostnames, key_mode)


def issue_client(ca: CertPair, out: CertPair, common_name: str) -> None:
    """A gateway's client certificate (CN = the gateway id)."""
    _issue(ca, out, common_name, ExtendedKeyUsageOID.CLIENT_AUTH)


def common_name(cert: Path) -> str:
    attrs = x509.load_pem_x509_certificate(cert.read_bytes()).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""
