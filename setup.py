"""Build of fastlb's one extension, fastlb._core: _core.pyx plus the C data plane beside it.

Switches (environment):
  FASTLB_SANITIZE=1  ASan + UBSan build (CI runs the unit tests on it)
  FASTLB_DEBUG=1     -O0 -g, assertions on
"""

import glob
import os

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError:  # an sdist carries the generated C
    cythonize = None

here = os.path.dirname(os.path.abspath(__file__))
c_sources = sorted(
    os.path.relpath(p, here) for p in glob.glob(os.path.join(here, "fastlb", "_*.c")) if not p.endswith("_core.c")
)

cflags = ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
ldflags = ["-pthread"]
if os.environ.get("FASTLB_SANITIZE") == "1":
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
    cflags += ["-O1", "-g"] + san
    ldflags += san
elif os.environ.get("FASTLB_DEBUG") == "1":
    cflags += ["-O0", "-g"]
else:
    cflags += ["-O2", "-DNDEBUG"]

pyx = "fastlb/_core.pyx"
if cythonize is None:
    pyx = "fastlb/_core.c"

ext = Extension(
    "fastlb._core",
    sources=[pyx] + c_sources,
    include_dirs=["fastlb"],
    extra_compile_args=cflags,
    extra_link_args=ldflags,
    # HTTP basic auth (fastlb/_h1auth.c): crypt_rn(3), and libcrypto's MD5 and SHA-1 for htpasswd's $apr1$, {SHA};
    # TLS termination (fastlb/_tls.c): libssl
    libraries=["crypt", "ssl", "crypto"],
    depends=sorted(glob.glob("fastlb/_*.h") + glob.glob("fastlb/*.pxi") + glob.glob("fastlb/includes/*.pxd")),
)

extensions = [ext]
if cythonize is not None:
    extensions = cythonize(
        extensions,
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
    )

setup(ext_modules=extensions)
