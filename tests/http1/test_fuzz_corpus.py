"""The fuzz target's inputs: the seeds `fuzz/seed_http1.py` makes from the unit tests hold every hostile
case, and replaying them with the stored corpus through the fuzz target (built without libFuzzer, under
ASan and UBSan, by `make -C fuzz replay`) breaks none of the target's promises."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "fuzz" / "corpus" / "http1"
HELLO_CORPUS = ROOT / "fuzz" / "corpus" / "hello"

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "fuzz"))
import seed_http1  # noqa: E402
import test_http1_chunked  # noqa: E402
import test_http1_request  # noqa: E402
import test_http1_response  # noqa: E402


def test_seeds_hold_every_hostile_case(tmp_path):
    seed_http1.main(tmp_path)
    seeds = {p.read_bytes() for p in tmp_path.iterdir()}
    cases = [
        *((n, d) for n, d, *_ in test_http1_request.HOSTILE),
        *((n, d) for n, d, *_ in test_http1_response.HOSTILE),
        *((n, d) for n, d, *_ in test_http1_chunked.HOSTILE),
    ]
    missing = [name for name, data in cases if data not in seeds]
    assert cases and not missing


def test_corpus_and_seeds_replay_clean(tmp_path):
    p = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "fuzz"), "replay", f"B={tmp_path}", f"PYTHON={sys.executable}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    replayed = [int(n) for n in re.findall(r"replayed (\d+) files, 0 unreadable", out)]
    # the HTTP/1 target, then the ClientHello reader's (fuzz/fuzz_hello.c)
    assert replayed == [
        len(list(CORPUS.iterdir())) + len(list((tmp_path / "seeds").iterdir())),
        len(list(HELLO_CORPUS.iterdir())) + len(list((tmp_path / "seeds-hello").iterdir())),
    ], out
