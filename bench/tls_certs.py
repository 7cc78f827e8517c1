"""How long fastlb takes to load many TLS certificates, and to take a change of one.

    python3 bench/tls_certs.py --certs 10000 --workers 1,2 --runs 3

Makes <certs> ECDSA P-256 certificates (one name each, signed by a throwaway CA) in a temporary
directory, then, per run and worker count, times what ``fastlb run --ssl-certs DIR`` does at start
and on a SIGHUP after one file changed, in the same process: the control plane reading and checking
every file (``certs.Files.load``: parse, key match, expiry, names) and the data plane building its
set (``DataPlane.set_certificates``: the default certificate parsed by OpenSSL and every worker's
context for it made; the others are kept as PEM, parsed and given a context when SNI first picks
them, which this does not measure: about 0.3 ms per certificate and worker). Prints the median of the
runs, the process's RSS growth, and how many PEMs the change made the data plane parse. Needs the
extension built; no network."""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from fastlb import _core, certs  # noqa: E402


def make(directory: Path, n: int) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")])
    now = datetime.datetime.now(datetime.UTC)
    for i in range(n):
        write(directory / f"site{i}.pem", f"site{i}.example.com", ca, ca_key, now)


def write(path: Path, host: str, ca: x509.Name, ca_key: ec.EllipticCurvePrivateKey, now: datetime.datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_once(directory: Path, workers: int) -> dict[str, float]:
    files = certs.Files()
    dp = _core.DataPlane(workers)
    before = rss()
    t0 = time.perf_counter()
    found, problems = files.load([str(directory)], "--ssl-certs")
    t1 = time.perf_counter()
    dp.set_certificates([(c.pem, c.names) for c in found])
    t2 = time.perf_counter()
    assert not problems, problems[:3]
    grown = rss() - before
    # one file changes (another certificate for its name), as a deploy tool writes it: then SIGHUP
    victim = directory / "site5.pem"
    ca = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA 2")])
    write(victim.with_suffix(".new"), "site5.example.com", ca, ec.generate_private_key(ec.SECP256R1()),
          datetime.datetime.now(datetime.UTC))
    os.replace(victim.with_suffix(".new"), victim)
    reads = _core.tls_reads()
    t3 = time.perf_counter()
    found, problems = files.load([str(directory)], "--ssl-certs")
    t4 = time.perf_counter()
    dp.set_certificates([(c.pem, c.names) for c in found])
    t5 = time.perf_counter()
    parsed = _core.tls_reads() - reads
    dp.stop()
    return {"parsed_on_change": parsed, "read": t1 - t0, "dataplane": t2 - t1, "total": t2 - t0, "rss_mb": grown / 1e6,
            "change_read": t4 - t3, "change_dataplane": t5 - t4, "change_total": t5 - t3}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--certs", type=int, default=10000)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        t = time.perf_counter()
        make(directory, args.certs)
        print(f"made {args.certs} certificates in {time.perf_counter() - t:.1f} s; CPUs {len(os.sched_getaffinity(0))}")
        for workers in (int(w) for w in args.workers.split(",")):
            runs = [run_once(directory, workers) for _ in range(args.runs)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(f"workers {workers}: load {med['total']:.2f} s (control plane {med['read']:.2f} + data plane "
                  f"{med['dataplane']:.2f}), RSS +{med['rss_mb']:.0f} MB; one file changed: "
                  f"{med['change_total']:.2f} s ({med['change_read']:.2f} + {med['change_dataplane']:.2f}), "
                  f"{med['parsed_on_change']:.0f} PEM parsed; runs {[round(r['total'], 2) for r in runs]}")


if __name__ == "__main__":
    main()
