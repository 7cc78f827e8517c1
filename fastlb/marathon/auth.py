"""Credentials fastlb presents to Marathon: HTTP basic, or a DC/OS service account.

Every kind answers ``authorization(session)`` with the value of the ``Authorization`` header (or None),
and is told ``invalidate(rejected)`` when Marathon answered 401 to that value, so that the next request
logs in again: once, however many requests the old token had in flight.

DC/OS service account (marathon-lb's ``--dcos-auth-credentials``, ``$DCOS_SERVICE_ACCOUNT_CREDENTIAL``):
a JSON object ``{"uid", "private_key" (PEM, RSA), "login_endpoint"}``. fastlb signs an RS256 JWT
``{"uid", "exp"}`` with the key, posts ``{"uid", "token": <jwt>}`` to the login endpoint and sends the
token it gets back as ``Authorization: token=<token>``. The token is renewed ``refresh_margin`` seconds
before the lifetime it was asked for runs out, so no request goes out with an expired one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Protocol

import aiohttp
import msgspec


class AuthError(ValueError):
    """Credentials that cannot be used: a bad file, a bad key, a refused login."""


class Auth(Protocol):
    async def authorization(self, session: aiohttp.ClientSession) -> str | None: ...

    def invalidate(self, rejected: str | None = None) -> None: ...


class BasicAuth:
    """``--auth-credentials user:pass`` and ``--marathon-auth-credential-file``."""

    def __init__(self, user: str, password: str) -> None:
        if not user or ":" in user:
            raise AuthError("basic auth: the user name must be non-empty and hold no ':'")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self.user = user
        self._header = f"Basic {token}"

    @classmethod
    def parse(cls, credentials: str) -> BasicAuth:
        """``user:pass``; the password may itself hold ':'."""
        user, colon, password = credentials.strip().partition(":")
        if not colon:
            raise AuthError("basic auth credentials must read user:password")
        return cls(user, password)

    @classmethod
    def from_file(cls, path: str) -> BasicAuth:
        """The first non-empty line of ``path`` holds ``user:pass`` (marathon-lb's credential file)."""
        try:
            with open(path, encoding="utf-8") as f:
                lines = [line.strip() for line in f if line.strip()]
        except OSError as e:
            raise AuthError(f"{path}: {e.strerror or e}") from None
        if not lines:
            raise AuthError(f"{path}: empty credential file")
        try:
            return cls.parse(lines[0])
        except AuthError as e:
            raise AuthError(f"{path}: {e}") from None

    async def authorization(self, session: aiohttp.ClientSession) -> str | None:
        return self._header

    def invalidate(self, rejected: str | None = None) -> None:
        pass  # static credentials: nothing to renew

    def __repr__(self) -> str:
        return f"BasicAuth(user={self.user!r})"  # never the password


class ServiceAccountCredentials(msgspec.Struct, frozen=True):
    uid: str
    private_key: str
    login_endpoint: str


class _LoginAnswer(msgspec.Struct):
    token: str


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def rs256_jwt(claims: dict[str, object], private_key_pem: str) -> str:
    """A compact JWS of ``claims`` signed RS256 (RSASSA-PKCS1-v1_5 with SHA-256) by the PEM key."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    except (ValueError, TypeError) as e:
        raise AuthError(f"service account private_key: {e}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise AuthError("service account private_key: RS256 needs an RSA key")
    header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signing_input = header + b"." + payload
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return (signing_input + b"." + _b64url(signature)).decode("ascii")


class ServiceAccountAuth:
    """DC/OS service account login, renewed ahead of expiry and after a 401."""

    def __init__(
        self,
        credentials: ServiceAccountCredentials,
        *,
        lifetime: float = 3600.0,
        refresh_margin: float = 60.0,
        clock=time.time,
    ) -> None:
        self.credentials = credentials
        self.lifetime = lifetime
        self.refresh_margin = refresh_margin
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        rs256_jwt({"uid": credentials.uid}, credentials.private_key)  # a bad key fails here, at start

    @classmethod
    def parse(cls, text: str | bytes, **kwargs) -> ServiceAccountAuth:
        try:
            creds = msgspec.json.decode(text, type=ServiceAccountCredentials)
        except msgspec.ValidationError as e:
            raise AuthError(f"service account credentials: {e}") from None
        except msgspec.DecodeError as e:
            raise AuthError(f"service account credentials are not JSON: {e}") from None
        return cls(creds, **kwargs)

    @property
    def expires_at(self) -> float:
        return self._expires

    async def authorization(self, session: aiohttp.ClientSession) -> str | None:
        if self._token is None or self._clock() >= self._expires - self.refresh_margin:
            async with self._lock:
                if self._token is None or self._clock() >= self._expires - self.refresh_margin:
                    await self._login(session)
        return f"token={self._token}"

    def invalidate(self, rejected: str | None = None) -> None:
        """Forget the token, unless ``rejected`` names an older one that was already replaced."""
        if rejected is None or rejected == f"token={self._token}":
            self._token = None

    async def _login(self, session: aiohttp.ClientSession) -> None:
        creds = self.credentials
        now = self._clock()
        jwt = rs256_jwt({"uid": creds.uid, "exp": int(now + self.lifetime)}, creds.private_key)
        body = json.dumps({"uid": creds.uid, "token": jwt}).encode()
        async with session.post(
            creds.login_endpoint, data=body, headers={"Content-Type": "application/json"}
        ) as resp:
            raw = await resp.read()
            if resp.status != 200:
                raise AuthError(f"DC/OS login at {creds.login_endpoint}: HTTP {resp.status}")
        try:
            answer = msgspec.json.decode(raw, type=_LoginAnswer)
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            raise AuthError(f"DC/OS login answer: {e}") from None
        self._token = answer.token
        self._expires = now + self.lifetime

    def __repr__(self) -> str:
        return f"ServiceAccountAuth(uid={self.credentials.uid!r})"
