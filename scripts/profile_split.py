#!/usr/bin/env python3
"""Splits callgrind profiles (exclusive instruction counts per function) into
the parts of a domain's cost named in issue 13: TLS (rustls, webpki and the
aws-lc crypto), DNS (hickory), XML (quick-xml and our stream reader),
certificate analysis (x509-parser, our cert/eku/san code), JSON (serde_json),
database client (sqlx), async runtime and I/O (tokio, mio, syscalls),
memory allocation, and the rest.

usage: profile_split.py DOMAINS NAME=callgrind.out.PID [NAME=...]
Prints one line per (process, part): instructions per domain and share.
"""
import re
import subprocess
import sys

PARTS = [
    # aws-lc seeds its DRBG once per process with CPU jitter entropy: a
    # start-up cost (~0.4 G instructions), not a per-domain one.
    ("aws-lc entropy seeding (once per process)", re.compile(r"jent_|tree_jitter|rol64|xoshiro128")),
    ("TLS crypto (aws-lc)", re.compile(r"aws_lc|^bn_|^BN_|ecp_nistz|p256|x25519|X25519|fiat_|sha256_block|sha512_block|aes_hw|gcm_|ChaCha|chacha|poly1305|EVP_|RSA_|rsa_|ECDSA|ecdsa|^EC_|ec_GFp|ec_point|mlkem|ML_KEM|ml_kem|keccak|Keccak|SHA3|bn_sqr|bn_mul|CRYPTO_|OPENSSL_|beeu|RAND_|ctr_drbg|jent")),
    ("TLS protocol (rustls, webpki)", re.compile(r"rustls|webpki|tokio_rustls")),
    ("DNS (hickory)", re.compile(r"hickory")),
    ("XML (quick-xml, xmpp)", re.compile(r"quick_xml|xmpp_survey::xmpp|xmpp_survey::negotiation")),
    ("certificate analysis (x509-parser, tls::cert)", re.compile(r"x509_parser|der_parser|asn1_rs|oid_registry|xmpp_survey::tls::(cert|eku|san|identity|issuers)")),
    ("JSON (serde_json)", re.compile(r"serde_json|serde::")),
    ("database client (sqlx)", re.compile(r"sqlx")),
    ("testnet servers", re.compile(r"xmpp_survey::testnet")),
    ("memory (malloc, free, memcpy)", re.compile(r"malloc|free|realloc|calloc|memcpy|memmove|memset|_int_|sysmalloc|tcache|unlink_chunk")),
    ("async runtime, I/O (tokio, mio, std)", re.compile(r"tokio|mio::|std::sys|std::io|futures|epoll|parking_lot|__libc|syscall|socket|send|recv|clone|pthread|futex")),
]


def functions(path):
    """(function, exclusive Ir) from callgrind_annotate."""
    out = subprocess.run(
        ["callgrind_annotate", "--threshold=100", "--inclusive=no", path],
        capture_output=True, text=True, check=True,
    ).stdout
    total = 0
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)$", line)
        if not m:
            m2 = re.match(r"\s*([\d,]+)\s+\(100\.0%\)\s+PROGRAM TOTALS", line)
            if m2:
                total = int(m2.group(1).replace(",", ""))
            continue
        ir = int(m.group(1).replace(",", ""))
        name = m.group(2)
        if "PROGRAM TOTALS" in name:
            total = ir
            continue
        rows.append((name, ir))
    # A dump taken while the process runs (the testnet's) lists the frames
    # open at that moment with their whole cost: no function's own cost can
    # be the whole program's, so those rows are not exclusive costs.
    return total, [(n, ir) for n, ir in rows if total == 0 or ir < total * 0.99]


def main():
    domains = int(sys.argv[1])
    for spec in sys.argv[2:]:
        label, path = spec.split("=", 1)
        total, rows = functions(path)
        parts = {p: 0 for p, _ in PARTS}
        other = 0
        for name, ir in rows:
            fn = name.split(" [", 1)[0]
            fn = fn.split(":", 1)[1] if re.match(r"^[^:]*\.(rs|c|S|h):", fn) or fn.startswith("???:") else fn
            for p, rx in PARTS:
                if rx.search(fn):
                    parts[p] += ir
                    break
            else:
                other += ir
        other += total - sum(ir for _, ir in rows)
        print(f"{label}: {total / domains / 1e6:.2f} M instructions per domain")
        for p, _ in PARTS:
            if parts[p]:
                print(f"  {p:<48} {parts[p] / domains / 1e6:8.2f} M/domain {100 * parts[p] / total:5.1f} %")
        print(f"  {'other':<48} {other / domains / 1e6:8.2f} M/domain {100 * other / total:5.1f} %")


if __name__ == "__main__":
    main()
