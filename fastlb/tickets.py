"""TLS session ticket keys: the ones every worker shares, rotated, or read from a key file.

A session resumes from a ticket the server sealed with one of its keys. fastlb's workers each accept
on their own ``SO_REUSEPORT`` socket, so a client's next connection may land on any of them: they all
use the keys given here (``DataPlane.set_ticket_keys``), not a context's own.

- Without a key file the keys are random, made in this process, and rotated every
  :data:`ROTATE_S`: the newest seals new tickets, the two before it still open theirs.
- With a key file (``--tls-ticket-keys``, ``[https] ticket_keys``), HAProxy's ``tls-ticket-keys``
  format: one key per line, base64 of 80 bytes (16 bytes of name, a 32-byte AES-256 key, a 32-byte
  HMAC key; 48 bytes with 16-byte keys: AES-128), all one size, ``#`` comments. Its last three keys
  open tickets and the one before the last seals them: append a key on every node of a fleet, reload
  (SIGHUP), and the new key is known everywhere one rotation before anyone seals with it. Nodes that
  share the file resume each other's sessions (ECMP in front of several fastlb).

Pure: reads the file it is given, no sockets, no ``_core``."""

from __future__ import annotations

import base64
import binascii
import os
import time

KEYS = 3  # keys that open tickets
ROTATE_S = 3600.0  # random keys: a new one seals tickets this often
_SIZES = (48, 80)


class KeyFileError(Exception):
    """A key file that cannot be used: what is wrong with it, its path first."""


def read_key_file(path: str) -> tuple[list[bytes], int]:
    """The keys of the file at <path> that open tickets (its last three), and the index among them of
    the one that seals (the one before the last; the only one when there is one)."""
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as e:
        raise KeyFileError(f"{path}: {e.strerror}") from None
    keys: list[bytes] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        try:
            key = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise KeyFileError(f"{path}:{n}: not base64") from None
        if len(key) not in _SIZES:
            raise KeyFileError(f"{path}:{n}: a key is 48 or 80 bytes (openssl rand 80 | base64 -w0), not {len(key)}")
        if keys and len(key) != len(keys[0]):
            raise KeyFileError(f"{path}:{n}: {len(key)} bytes where the first key has {len(keys[0])} (one size)")
        keys.append(key)
    if not keys:
        raise KeyFileError(f"{path}: no key in it (one base64 line per key)")
    last = keys[-KEYS:]
    return last, max(len(last) - 2, 0)


class TicketKeys:
    """The keys the data plane should use now: from the key file when there is one (read again when it
    changes: inode, size or mtime), else random ones rotated every :data:`ROTATE_S`. A key file that
    turns unreadable or bad keeps the last good keys, with its problem said once."""

    def __init__(self, path: str | None, *, clock: object = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._ident: tuple[int, int, int] | None = None
        self._random: list[bytes] = []
        self._rotated = 0.0
        self.keys: list[bytes] = []
        self.enc = 0
        self.problem: str | None = None
        self.rotations = 0

    def refresh(self) -> bool:
        """Brings the keys up to date: True when they changed (then hand them to the data plane)."""
        if self.path is None:
            return self._rotate()
        try:
            st = os.stat(self.path)
            ident = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError as e:
            return self._bad(f"{self.path}: {e.strerror}")
        if ident == self._ident and self.problem is None:
            return False
        try:
            keys, enc = read_key_file(self.path)
        except KeyFileError as e:
            self._ident = ident
            return self._bad(str(e))
        self._ident, self.problem = ident, None
        if keys == self.keys and enc == self.enc:
            return False
        self.keys, self.enc = keys, enc
        self.rotations += 1
        return True

    def _rotate(self) -> bool:
        now = self._clock()  # type: ignore[operator]
        if self._random and now - self._rotated < ROTATE_S:
            return False
        self._random = [os.urandom(80), *self._random][:KEYS]
        self._rotated = now
        self.keys, self.enc = list(self._random), 0
        self.rotations += 1
        return True

    def _bad(self, problem: str) -> bool:
        self.problem = problem
        return False
