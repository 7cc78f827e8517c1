"""Credentials: basic (flag and file) and the DC/OS service-account login, against real HTTP peers."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fastlb.emulator.emulator import MarathonEmulator
from fastlb.marathon.auth import AuthError, BasicAuth, ServiceAccountAuth, auth_from_options, rs256_jwt

from .harness import Recorder, make_provider, running, web_app


def unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


async def test_basic_parse_and_header() -> None:
    auth = BasicAuth.parse("user:pa:ss")
    header = await auth.authorization(None)  # type: ignore[arg-type]  # basic needs no session
    assert header == "Basic " + base64.b64encode(b"user:pa:ss").decode()
    assert "pa:ss" not in repr(auth)
    for bad in ("nocolon", ":password"):
        with pytest.raises(AuthError):
            BasicAuth.parse(bad)


def test_credential_file(tmp_path: Path) -> None:
    f = tmp_path / "cred"
    f.write_text("\n  lb:secret  \n")
    assert BasicAuth.from_file(str(f)).user == "lb"
    f.write_text("")
    with pytest.raises(AuthError, match="empty"):
        BasicAuth.from_file(str(f))
    with pytest.raises(AuthError, match="missing"):
        BasicAuth.from_file(str(tmp_path / "missing"))


def test_rs256_jwt_verifies(rsa_key: rsa.RSAPrivateKey) -> None:
    token = rs256_jwt({"uid": "fastlb", "exp": 123}, pem(rsa_key))
    header, payload, signature = token.split(".")
    assert json.loads(unb64(header)) == {"alg": "RS256", "typ": "JWT"}
    assert json.loads(unb64(payload)) == {"exp": 123, "uid": "fastlb"}
    rsa_key.public_key().verify(  # raises on a bad signature
        unb64(signature), f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )


def test_bad_service_account_credentials() -> None:
    with pytest.raises(AuthError, match="not JSON"):
        ServiceAccountAuth.parse("{")
    with pytest.raises(AuthError, match="login_endpoint"):
        ServiceAccountAuth.parse('{"uid": "a", "private_key": "x"}')
    with pytest.raises(AuthError, match="private_key"):
        ServiceAccountAuth.parse('{"uid": "a", "private_key": "x", "login_endpoint": "http://127.0.0.1:1/"}')


class LoginServer:
    """The DC/OS IAM login endpoint: checks the JWT and hands out numbered tokens."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self.key = key
        self.logins: list[dict] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def login(self, request: web.Request) -> web.Response:
        body = await request.json()
        header, payload, signature = body["token"].split(".")
        self.key.public_key().verify(
            unb64(signature), f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256()
        )
        claims = json.loads(unb64(payload))
        assert claims["uid"] == body["uid"] == "fastlb-sa"
        self.logins.append(claims)
        return web.json_response({"token": f"acs-{len(self.logins)}"})

    async def __aenter__(self) -> LoginServer:
        app = web.Application()
        app.router.add_post("/acs/api/v1/auth/login", self.login)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/acs/api/v1/auth/login"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


async def test_service_account_login_and_refresh_before_expiry(rsa_key: rsa.RSAPrivateKey) -> None:
    now = [1_000_000.0]
    async with LoginServer(rsa_key) as login, aiohttp.ClientSession() as session:
        creds = json.dumps({"uid": "fastlb-sa", "private_key": pem(rsa_key), "login_endpoint": login.url})
        auth = ServiceAccountAuth.parse(creds, lifetime=3600, refresh_margin=60, clock=lambda: now[0])
        assert await auth.authorization(session) == "token=acs-1"
        assert login.logins[0]["exp"] == 1_000_000 + 3600
        now[0] += 3500  # still 100 s to go: the token is kept
        assert await auth.authorization(session) == "token=acs-1"
        now[0] += 50  # within the margin: renewed before it expires
        assert await auth.authorization(session) == "token=acs-2"
        auth.invalidate("token=acs-1")  # a late 401 to an old token changes nothing
        assert await auth.authorization(session) == "token=acs-2"
        auth.invalidate("token=acs-2")
        assert await auth.authorization(session) == "token=acs-3"


async def test_service_account_against_marathon(rsa_key: rsa.RSAPrivateKey) -> None:
    async with LoginServer(rsa_key) as login, MarathonEmulator(heartbeat_interval=0.2) as emulator:
        creds = json.dumps({"uid": "fastlb-sa", "private_key": pem(rsa_key), "login_endpoint": login.url})
        emulator.require_token("acs-2")  # the first token is refused: a 401 makes fastlb log in again
        emulator.load_app(web_app())
        task = emulator.add_task("/web", [31001], emit=False)
        rec = Recorder([emulator])
        provider = make_provider([emulator.url], auth=ServiceAccountAuth.parse(creds))
        async with running(provider, rec):
            await rec.wait_backends({task})
            second = emulator.add_task("/web", [31002])
            await rec.wait_backends({task, second})
        assert len(login.logins) == 2  # one login per refused token, not one per refused request


def test_auth_from_options(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    assert auth_from_options() is None
    assert isinstance(auth_from_options(auth_credentials="a:b"), BasicAuth)
    f = tmp_path / "cred"
    f.write_text("a:b\n")
    assert isinstance(auth_from_options(credential_file=str(f)), BasicAuth)
    sa = json.dumps({"uid": "u", "private_key": pem(rsa_key), "login_endpoint": "http://127.0.0.1:1/login"})
    assert isinstance(auth_from_options(dcos_credentials=sa), ServiceAccountAuth)
    with pytest.raises(AuthError, match="only one"):
        auth_from_options(auth_credentials="a:b", credential_file=str(f))
