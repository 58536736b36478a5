"""Certificates for the mTLS tests, generated per run with `cryptography`."""
import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(dir: Path, stem: str, key, cert) -> tuple[str, str]:
    kp, cp = dir / f"{stem}.key", dir / f"{stem}.crt"
    kp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(cp), str(kp)


class CA:
    def __init__(self, dir: Path, cn: str):
        self.dir = dir
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder()
                     .subject_name(_name(cn)).issuer_name(_name(cn))
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(hours=1))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.path, _ = _write(dir, cn, self.key, self.cert)

    def issue(self, stem: str, cn: str, sans: list) -> tuple[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder()
                .subject_name(_name(cn)).issuer_name(self.cert.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .sign(self.key, hashes.SHA256()))
        return _write(self.dir, stem, key, cert)


def make_pki(dir: Path) -> dict:
    ca = CA(dir, "combo-test-ca")
    rogue = CA(dir, "rogue-ca")
    server = ca.issue("server", "localhost", [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    return {
        "ca": ca.path,
        "server": server,
        "bridge": ca.issue("bridge", "zendesk-bridge",
                           [x509.UniformResourceIdentifier("spiffe://cluster.local/ns/crm/sa/zendesk-bridge")]),
        "stranger": ca.issue("stranger", "stranger",
                             [x509.UniformResourceIdentifier("spiffe://cluster.local/ns/other/sa/stranger")]),
        "by_dns": ca.issue("by_dns", "dns-client", [x509.DNSName("hooks.partner.example")]),
        "envoy_client": ca.issue("envoy_client", "envoy", [x509.DNSName("envoy")]),
        # The listed identity is its second URI SAN: only an every-SAN check admits it.
        "multi": ca.issue("multi", "multi", [x509.UniformResourceIdentifier("spiffe://cluster.local/ns/other/sa/first"),
                                             x509.UniformResourceIdentifier("spiffe://cluster.local/ns/crm/sa/zendesk-bridge")]),
        # Envoy writes URI SANs unquoted into XFCC: this one reads like a URI
        # SAN and the DNS SAN a trigger lists (it has no DNS SAN at all).
        "smuggler": ca.issue("smuggler", "smuggler", [
            x509.UniformResourceIdentifier("spiffe://partner-b.example/x;DNS=hooks.partner.example")]),
        # ... and from a second URI SAN, with a DNS SAN of its own.
        "smuggler2": ca.issue("smuggler2", "smuggler2", [
            x509.UniformResourceIdentifier("spiffe://partner-b.example/a"),
            x509.UniformResourceIdentifier("spiffe://partner-b.example/x;DNS=hooks.partner.example"),
            x509.DNSName("partner-b.example")]),
        "rogue": rogue.issue("rogue", "zendesk-bridge",
                             [x509.UniformResourceIdentifier("spiffe://cluster.local/ns/crm/sa/zendesk-bridge")]),
    }
