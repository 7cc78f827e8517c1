"""Build of fastlb's extensions: fastlb._core (_core.pyx plus the C data plane beside it), and
fastlb._testhooks (_testhooks.pyx plus the C units it reaches), which only the tests import.

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
# What Cython generates (from the .pyx beside it) is not part of the data plane.
generated = {"_core.c", "_testhooks.c"}
c_sources = sorted(
    os.path.relpath(p, here)
    for p in glob.glob(os.path.join(here, "fastlb", "_*.c"))
    if os.path.basename(p) not in generated
)
# The C units the test hooks call (_balance.pxi, _http1.pxi); neither calls outside itself.
testhooks_sources = ["fastlb/_balance.c", "fastlb/_http1.c"]

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
testhooks_pyx = "fastlb/_testhooks.pyx"
if cythonize is None:
    pyx = "fastlb/_core.c"
    testhooks_pyx = "fastlb/_testhooks.c"

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

testhooks = Extension(
    "fastlb._testhooks",
    sources=[testhooks_pyx] + testhooks_sources,
    include_dirs=["fastlb"],
    extra_compile_args=cflags,
    extra_link_args=ldflags,
    depends=ext.depends,
)

extensions = [ext, testhooks]
if cythonize is not None:
    extensions = cythonize(
        extensions,
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
    )

setup(ext_modules=extensions)
