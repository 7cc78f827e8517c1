"""The fuzz corpus: it holds every hostile case of the unit tests, and replaying it through the fuzz
target (built without libFuzzer, under ASan and UBSan) breaks none of the target's promises."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "fuzz" / "corpus" / "http1"

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_http1_chunked  # noqa: E402
import test_http1_request  # noqa: E402
import test_http1_response  # noqa: E402


def test_corpus_holds_every_hostile_case():
    seeds = {p.read_bytes() for p in CORPUS.iterdir()}
    cases = [
        *((n, d) for n, d, *_ in test_http1_request.HOSTILE),
        *((n, d) for n, d, *_ in test_http1_response.HOSTILE),
        *((n, d) for n, d, *_ in test_http1_chunked.HOSTILE),
    ]
    missing = [name for name, data in cases if data not in seeds]
    assert not missing


def test_corpus_replays_clean(tmp_path):
    p = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "tests" / "c"), "replay", f"B={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    m = re.search(r"replayed (\d+) files, 0 unreadable", out)
    assert m, out
    assert int(m.group(1)) == len(list(CORPUS.iterdir()))
