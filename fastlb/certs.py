"""TLS certificates as fastlb reads them, for the https listener.

Sources, in order (the first certificate is the default one: no SNI, or a name no certificate has):
``--ssl-certs`` and ``[https] certs`` (PEM files holding a certificate, its chain and its key, HAProxy's
``crt`` format; a directory means every ``*.pem`` in it, sorted), then marathon-lb's environment,
``HAPROXY_SSL_CERT`` and ``HAPROXY_SSL_CERT0`` .. ``HAPROXY_SSL_CERT100`` (PEM text). With none at all a
self-signed certificate is made (:func:`self_signed`), as marathon-lb does.

Pure: reads files and the environment it is given, no sockets, no ``_core``."""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Mapping, Sequence

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ENV_CERT = "HAPROXY_SSL_CERT"
ENV_NUMBERED = 101  # HAPROXY_SSL_CERT0 .. HAPROXY_SSL_CERT100

_KEY = re.compile(rb"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.+?-----END \1PRIVATE KEY-----", re.DOTALL)


class CertError(Exception):
    """Every certificate that cannot be used, one line each, its source first."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Certificate(msgspec.Struct, frozen=True):
    source: str  # the file, the environment variable, or "self-signed"
    pem: bytes  # certificate, chain and key
    names: tuple[str, ...]  # host names it serves, lower case ("*.example.com": one label); (): every name
    not_after: str  # ISO 8601, UTC


def _der(key: object) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]


def parse(pem: bytes, source: str) -> Certificate:
    """The certificate in <pem> (read from <source>). Raises CertError: no certificate, no key, a key
    under a passphrase or one that does not match the certificate, a certificate past its notAfter."""
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise CertError([f"{source}: no PEM certificate in it"]) from None
    keys = [m.group(0) for m in _KEY.finditer(pem)]
    if not keys:
        raise CertError([f"{source}: no PEM private key in it (HAProxy's crt format: certificate, chain and key)"])
    try:
        key = serialization.load_pem_private_key(keys[0], password=None)
    except (ValueError, TypeError) as e:
        raise CertError([f"{source}: the private key cannot be read ({e})"]) from None
    leaf = chain[0]
    if _der(key.public_key()) != _der(leaf.public_key()):
        raise CertError([f"{source}: the private key does not match the certificate"])
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [n.lower().rstrip(".") for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = [str(a.value).lower().rstrip(".") for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    names = [n for n in names if n and len(n) <= 255 and n.isascii()]
    if not names:
        raise CertError([f"{source}: the certificate names no host (no DNS name in its SAN, no CN)"])
    if leaf.not_valid_after_utc <= datetime.datetime.now(datetime.UTC):
        raise CertError([f"{source}: the certificate expired on {leaf.not_valid_after_utc.isoformat()}"])
    return Certificate(
        source=source, pem=pem, names=tuple(dict.fromkeys(names)),
        not_after=leaf.not_valid_after_utc.isoformat(),
    )


def _read(path: str, what: str) -> Certificate:
    try:
        with open(path, "rb") as f:
            pem = f.read()
    except OSError as e:
        raise CertError([f"{what}: {path}: {e.strerror}"]) from None
    return parse(pem, f"{what}: {path}")


def from_paths(paths: Sequence[str], what: str) -> list[Certificate]:
    """The certificates of files and directories (every ``*.pem`` in one, sorted). Raises CertError
    with every problem."""
    out: list[Certificate] = []
    problems: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            files = sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".pem"))
            if not files:
                problems.append(f"{what}: {path}: a directory with no *.pem file")
        else:
            files = [path]
        for file in files:
            try:
                out.append(_read(file, what))
            except CertError as e:
                problems.extend(e.problems)
    if problems:
        raise CertError(problems)
    return out


def from_environ(environ: Mapping[str, str]) -> list[Certificate]:
    """marathon-lb's HAPROXY_SSL_CERT, then HAPROXY_SSL_CERT0 .. HAPROXY_SSL_CERT100. Raises CertError."""
    out: list[Certificate] = []
    problems: list[str] = []
    for name in [ENV_CERT] + [f"{ENV_CERT}{i}" for i in range(ENV_NUMBERED)]:
        text = environ.get(name, "")
        if not text.strip():
            continue
        try:
            out.append(parse(text.encode(), name))
        except CertError as e:
            problems.extend(e.problems)
    if problems:
        raise CertError(problems)
    return out


def gather(paths: Sequence[str], what: str, environ: Mapping[str, str]) -> list[Certificate]:
    """Every certificate given, files first, then the environment; [] when none is. Raises CertError."""
    problems: list[str] = []
    out: list[Certificate] = []
    for source in (lambda: from_paths(paths, what), lambda: from_environ(environ)):
        try:
            out.extend(source())
        except CertError as e:
            problems.extend(e.problems)
    if problems:
        raise CertError(problems)
    return out


def self_signed(days: int = 3650) -> Certificate:
    """A certificate for no name in particular, made now: it serves every name (names ())."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fastlb self-signed")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Certificate(source="self-signed", pem=pem, names=(), not_after=cert.not_valid_after_utc.isoformat())


class Files:
    """Certificate files read again only when they change (inode, size or mtime), each file's last good
    certificate kept: a file that turns missing, unparsable, mismatched or expired keeps serving the
    certificate it held, with one problem line, until it is good again. Not thread-safe."""

    def __init__(self) -> None:
        self._good: dict[str, tuple[tuple[int, int, int], Certificate]] = {}  # file -> (its identity, certificate)
        self._bad: dict[str, tuple[tuple[int, int, int] | None, str]] = {}  # file -> (its identity, the problem)
        self._cas: dict[str, tuple[tuple[int, int, int], bytes]] = {}  # CA file -> (its identity, its PEM)

    def load(self, paths: Sequence[str], what: str) -> tuple[list[Certificate], list[str]]:
        """The certificates of <paths> (files, or directories of *.pem), and a line for each file that
        cannot be used now: its last good certificate stands in for it when there is one."""
        out: list[Certificate] = []
        problems: list[str] = []
        for path in paths:
            if os.path.isdir(path):
                files = sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".pem"))
                if not files:
                    problems.append(f"{what}: {path}: a directory with no *.pem file")
            else:
                files = [path]
            for file in files:
                cert, problem = self._file(file, what)
                if problem is not None:
                    kept = f"; serving its last good certificate (until {cert.not_after})" if cert else ""
                    problems.append(problem + kept)
                if cert is not None:
                    out.append(cert)
        return out, problems

    def ca(self, path: str) -> bytes:
        """The CA certificates of <path> (read_ca), read again only when the file changed (inode, size
        or mtime). Raises CertError."""
        try:
            st = os.stat(path)
        except OSError as e:
            raise CertError([f"{path}: {e.strerror}"]) from None
        ident = (st.st_ino, st.st_size, st.st_mtime_ns)
        held = self._cas.get(path)
        if held is None or held[0] != ident:
            held = self._cas[path] = (ident, read_ca(path))
        return held[1]

    def _file(self, file: str, what: str) -> tuple[Certificate | None, str | None]:
        good = self._good.get(file)
        try:
            st = os.stat(file)
            ident: tuple[int, int, int] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError as e:
            ident = None
            problem = f"{what}: {file}: {e.strerror}"
        if ident is not None:
            if good is not None and good[0] == ident:
                return good[1], None
            bad = self._bad.get(file)
            if bad is not None and bad[0] == ident:
                return (good[1] if good else None), bad[1]
            try:
                cert = _read(file, what)
            except CertError as e:
                problem = "; ".join(e.problems)
            else:
                self._good[file] = (ident, cert)
                self._bad.pop(file, None)
                return cert, None
        self._bad[file] = (ident, problem)
        return (good[1] if good else None), problem


def covers(cert: Certificate, host: str) -> bool:
    """Whether <cert> serves <host> ("*.example.com" covers one label); a host that is itself a wildcard
    is covered by the same wildcard."""
    host = host.lower().rstrip(".")
    if not cert.names or host in cert.names:
        return True
    head, dot, rest = host.partition(".")
    return bool(dot) and head != "*" and f"*.{rest}" in cert.names


def claims(certificates: Sequence[Certificate], hosts: Sequence[str]) -> list[tuple[str, ...]]:
    """The hosts (a service's vhosts) each of a service's <certificates> claims on the shared https
    listener: each host to the first certificate that covers it, else to the first certificate."""
    out: list[list[str]] = [[] for _ in certificates]
    for host in hosts:
        i = next((k for k, c in enumerate(certificates) if covers(c, host)), 0)
        out[i].append(host)
    return [tuple(x) for x in out]


VERSIONS = ("TLSv1.2", "TLSv1.3")
VERIFY = ("optional", "required")  # client certificates: HAProxy's verify (its "none": not asked)


def read_ca(path: str) -> bytes:
    """The PEM text of the CA certificates in <path> (client certificates are verified against them).
    Raises CertError: unreadable, or no certificate in it."""
    try:
        with open(path, "rb") as f:
            pem = f.read()
    except OSError as e:
        raise CertError([f"{path}: {e.strerror}"]) from None
    try:
        x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise CertError([f"{path}: no PEM CA certificate in it"]) from None
    return pem


def verify_problems(verify: str, ca_file: str) -> list[str]:
    """Why client certificate settings cannot be served, one phrase each (the caller names where)."""
    if not verify and not ca_file:
        return []
    if verify not in VERIFY:
        return [f"verify: {verify!r} is not optional or required" if verify else "ca_file: needs verify"]
    if not ca_file:
        return [f"verify {verify}: needs a ca_file (the CAs that sign the client certificates)"]
    try:
        read_ca(ca_file)
    except CertError as e:
        return [f"ca_file: {p}" for p in e.problems]
    return []
HTTP_ALPN = ("http/1.1", "http/1.0")  # what an http-mode listener speaks (no h2 yet)
_CIPHERS = re.compile(r"^[A-Za-z0-9_+!@=:,.-]{1,1024}$")


def option_problems(
    alpn: Sequence[str], min_version: str, ciphers: str, ciphersuites: str, http: bool
) -> list[str]:
    """Why a service's handshake settings cannot be served, one phrase each (the caller names where)."""
    out: list[str] = []
    for name in alpn:
        if not 0 < len(name) < 256 or not name.isascii() or not name.isprintable() or "," in name:
            out.append(f"alpn: {name!r} is not a protocol name (1..255 printable ASCII characters)")
        elif http and name not in HTTP_ALPN:
            out.append(f"alpn: {name!r} is not spoken by an http-mode service (http/1.1 only)")
    if min_version and min_version not in VERSIONS:
        out.append(f"min_version: {min_version!r} is not TLSv1.2 or TLSv1.3")
    for what, text in (("ciphers", ciphers), ("ciphersuites", ciphersuites)):
        if text and not _CIPHERS.match(text):
            out.append(f"{what}: {text!r} is not an OpenSSL cipher list (names joined by ':')")
    return out
