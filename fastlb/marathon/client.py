"""HTTP to a Marathon cluster: the API reads fastlb needs and the ``/v2/events`` stream.

Several URLs are one cluster. A request tries the members in order, the last one that answered first
(marathon-lb's rotation); a member that cannot be reached or answers 5xx passes the request on to the
next. Standbys answer with a 302 to the leader (Marathon >= 1.7 does so for ``/v2/events``); redirects
are followed here, with the credentials, because the target is the leader the cluster itself named,
and the leader found that way is tried first from then on, until it fails.

TLS is verified: against ``ca_cert`` when one is given, else against the system's trust store.
(marathon-lb turns verification off when no CA is given; fastlb does not.)

Bodies are returned as bytes, undecoded: ``fastlb.marathon.state`` decodes them.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable, Sequence

import aiohttp
from yarl import URL

from fastlb.marathon.auth import Auth

log = logging.getLogger("fastlb.marathon")

USER_AGENT = "fastlb"
APPS_EMBED = (("embed", "apps.tasks"), ("embed", "apps.readiness"))  # repeated: Marathon splits no commas


class MarathonError(Exception):
    """No member of the cluster gave a usable answer."""


class MarathonHTTPError(MarathonError):
    def __init__(self, url: str, status: int, body: bytes = b"") -> None:
        text = body[:200].decode("utf-8", "replace").strip()
        super().__init__(f"{url}: HTTP {status}" + (f": {text}" if text else ""))
        self.url = url
        self.status = status


def _normalise(url: str) -> str:
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"not a Marathon URL (http:// or https:// expected): {url!r}")
    return str(parsed.with_query(None).with_fragment(None)).rstrip("/")


class EventStream:
    """An open ``/v2/events`` response. ``read`` returns the next bytes, b"" at the end of the stream."""

    def __init__(self, response: aiohttp.ClientResponse, base: str) -> None:
        self._response = response
        self.base = base

    async def read(self) -> bytes:
        return await self._response.content.readany()

    def close(self) -> None:
        self._response.close()


class MarathonClient:
    def __init__(
        self,
        urls: Sequence[str],
        *,
        auth: Auth | None = None,
        ca_cert: str | None = None,
        connect_timeout: float = 3.05,
        read_timeout: float = 46.0,
        max_redirects: int = 3,
    ) -> None:
        if not urls:
            raise ValueError("at least one Marathon URL is needed")
        self._members = [_normalise(u) for u in urls]
        self._preferred: str | None = None  # a leader found through a redirect, outside the list
        self.auth = auth
        self.ca_cert = ca_cert
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_redirects = max_redirects
        self._session: aiohttp.ClientSession | None = None
        self.last_good: str | None = None

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(self._members)

    def _ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_cert)  # verification on, always

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl(), limit=16)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": USER_AGENT},
                auto_decompress=True,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> MarathonClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _order(self) -> list[str]:
        order = list(self._members)
        if self._preferred is not None:
            order.insert(0, self._preferred)
        return order

    def _succeeded(self, base: str) -> None:
        self.last_good = base
        if base in self._members:
            self._members.remove(base)
            self._members.insert(0, base)
            self._preferred = None
        else:
            self._preferred = base

    def _failed(self, base: str) -> None:
        if base == self._preferred:
            self._preferred = None

    async def _headers(self, accept: str) -> dict[str, str]:
        headers = {"Accept": accept}
        if self.auth is not None:
            value = await self.auth.authorization(self.session)
            if value:
                headers["Authorization"] = value
        return headers

    async def _request(
        self,
        base: str,
        path: str,
        params: Iterable[tuple[str, str]],
        *,
        accept: str,
        extra: dict[str, str] | None = None,
        timeout: aiohttp.ClientTimeout,
    ) -> tuple[aiohttp.ClientResponse, str]:
        """One GET against one member, following redirects; returns the final response (open) and the
        base URL of the member that gave it."""
        url = URL(base + path, encoded=False).with_query(list(params))
        retried_auth = False
        for _ in range(self.max_redirects + 1):
            headers = await self._headers(accept)
            if extra:
                headers.update(extra)
            resp = await self.session.get(url, headers=headers, allow_redirects=False, timeout=timeout)
            if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                location = url.join(URL(resp.headers["Location"]))
                resp.release()
                url = location
                base = _base_of(location, path)
                continue
            if resp.status == 401 and self.auth is not None and not retried_auth:
                resp.release()
                self.auth.invalidate(headers.get("Authorization"))
                retried_auth = True
                continue
            return resp, base
        raise MarathonError(f"{base}{path}: more than {self.max_redirects} redirects")

    async def get(self, path: str, params: Iterable[tuple[str, str]] = ()) -> bytes:
        """The body of a 200 answer to ``GET path``, from the first member that gives one.

        A 4xx (other than 401, which renews credentials once) is the cluster's answer and raised as
        MarathonHTTPError at once; unreachable members, timeouts and 5xx move on to the next member."""
        params = list(params)
        timeout = aiohttp.ClientTimeout(sock_connect=self.connect_timeout, sock_read=self.read_timeout)
        errors: list[str] = []
        for base in self._order():
            try:
                resp, final = await self._request(
                    base, path, params, accept="application/json", timeout=timeout
                )
                async with resp:
                    body = await resp.read()
                    if resp.status == 200:
                        self._succeeded(final)
                        return body
                    err = MarathonHTTPError(str(resp.url), resp.status, body)
                if resp.status < 500:
                    self._succeeded(final)  # it answered: it is reachable, the request is what failed
                    raise err
                errors.append(str(err))
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                errors.append(f"{base}{path}: {type(e).__name__}: {e}")
            self._failed(base)
        raise MarathonError("; ".join(errors))

    async def apps(self) -> bytes:
        """Every app with its tasks and readiness results: the full resync payload."""
        return await self.get("/v2/apps", APPS_EMBED)

    async def app(self, app_id: str) -> bytes | None:
        """``GET /v2/apps/<id>`` (``{"app": ...}``, tasks embedded by Marathon); None when it is gone."""
        try:
            return await self.get("/v2/apps/" + app_id.strip("/"))
        except MarathonHTTPError as e:
            if e.status == 404:
                return None
            raise

    async def deployments(self) -> bytes:
        return await self.get("/v2/deployments")

    async def open_events(
        self, event_types: Iterable[str], connect_timeout: float | None = None
    ) -> EventStream:
        """Open ``/v2/events`` on the first member that accepts, filtered to ``event_types``.

        The response has no read deadline here: the caller enforces an idle deadline per read, because
        only it knows the heartbeat period."""
        params = [("event_type", t) for t in event_types]
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout or self.connect_timeout, sock_read=None
        )
        errors: list[str] = []
        for base in self._order():
            try:
                # Headers are bounded by the connect timeout: a member that accepts the connection and
                # never answers must not hold the stream up.
                async with asyncio.timeout(max(self.connect_timeout, 1.0) * 3):
                    resp, final = await self._request(
                        base,
                        "/v2/events",
                        params,
                        accept="text/event-stream",
                        extra={"Cache-Control": "no-cache"},
                        timeout=timeout,
                    )
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                errors.append(f"{base}/v2/events: {type(e).__name__}: {e}")
                self._failed(base)
                continue
            ctype = resp.headers.get("Content-Type", "")
            if resp.status == 200 and ctype.split(";")[0].strip() == "text/event-stream":
                self._succeeded(final)
                return EventStream(resp, final)
            body = b""
            try:
                body = await asyncio.wait_for(resp.content.read(200), self.connect_timeout)
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
            resp.close()
            status = resp.status if resp.status != 200 else 0
            errors.append(
                str(MarathonHTTPError(str(resp.url), status, body))
                if status
                else f"{resp.url}: not an event stream (Content-Type {ctype!r})"
            )
            self._failed(base)
        raise MarathonError("; ".join(errors))


def _base_of(url: URL, path: str) -> str:
    """The member base URL of a redirect target for ``path`` (the leader's own prefix kept)."""
    full = str(url.with_query(None).with_fragment(None))
    if full.endswith(path):
        return full[: len(full) - len(path)].rstrip("/")
    return str(url.origin())
