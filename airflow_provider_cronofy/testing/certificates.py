"""A throw-away self-signed certificate for 127.0.0.1, to serve the emulator over HTTPS.

Uses ``cryptography`` (an Airflow dependency), imported when called, so that importing the
emulator stays standard-library only.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Literal, NamedTuple


class CertificateFiles(NamedTuple):
    """Paths of a PEM certificate (its own CA: pass it as ``verify=``) and its private key."""

    cert: str
    key: str


def make_self_signed_certificate(
    directory: str | Path, *, key_type: Literal["ec", "rsa"] = "ec"
) -> CertificateFiles:
    """Write a self-signed certificate for 127.0.0.1 (IP SAN) and its key into ``directory``.

    ``key_type="ec"`` (P-256) is quick to make; ``"rsa"`` (2048 bits, the common key of public
    HTTPS servers) makes a handshake cost what a usual one does, for benchmarks. The certificate is
    valid for one day and is its own CA, with what strict verification asks of one.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if key_type == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_type == "rsa",
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    directory = Path(directory)
    cert_path, key_path = directory / "emulator-cert.pem", directory / "emulator-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return CertificateFiles(str(cert_path), str(key_path))
