"""Writes the unit tests' inputs (valid and hostile requests, responses and chunked bodies) into
fuzz/corpus/http1/, one file per case, named after it. Run after adding a case to the tests:

    python3 fuzz/seed_http1.py

Existing files are overwritten with the same bytes; found-* and crash-* files are left alone."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "fuzz" / "corpus" / "http1"

sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "http1")]
import test_http1_chunked  # noqa: E402
import test_http1_request  # noqa: E402
import test_http1_response  # noqa: E402


def main() -> None:
    CORPUS.mkdir(parents=True, exist_ok=True)
    modules = (("req", test_http1_request), ("resp", test_http1_response), ("chunk", test_http1_chunked))
    for prefix, module in modules:
        for name, data, *_ in module.HOSTILE:
            (CORPUS / f"{prefix}-bad-{name}").write_bytes(data)
        for i, data in enumerate(module.VALID):
            (CORPUS / f"{prefix}-ok-{i}").write_bytes(data)


if __name__ == "__main__":
    main()
