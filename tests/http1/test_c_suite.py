"""Builds and runs tests/c: test_http1.c, the parsers on their own, every input against a PROT_NONE guard
page, under ASan and UBSan, once with the SSE2 scanning and once with the scalar fallback; test_hello.c, the
ClientHello reader, on hellos captured from openssl s_client and Python's ssl; test_list.c, the intrusive
list of fastlb/_list.h, under ASan and UBSan, against an array kept in the same order."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_c_suite_under_sanitizers(tmp_path):
    p = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "tests" / "c"), "test", f"B={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    summaries = re.findall(r"# (\w+): (\d+) checks, (\d+) failures", out)
    # the parsers' SIMD and scalar builds, the ClientHello reader, the list
    assert [name for name, _, _ in summaries] == ["http1", "http1", "hello", "list"], out
    for name, checks, failures in summaries:
        assert int(checks) > (10000 if name == "list" else 1000) and int(failures) == 0, out
    assert "not ok" not in out
