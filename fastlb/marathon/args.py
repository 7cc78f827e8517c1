"""The Marathon options of ``fastlb run`` and ``fastlb routes`` (marathon-lb's names), and the provider
made from them. The provider itself (``fastlb.marathon.provider``: asyncio, HTTP) is imported only
when --marathon is given.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fastlb.marathon.options import FollowOptions, MarathonOptions
from fastlb.provider import Provider

_BUILD = MarathonOptions()
_FOLLOW = FollowOptions()
# MarathonArgs' fields that are the build's options, passed on under their own names
BUILD_FIELDS = ("groups", "strict_mode", "health_check", "bind_addr", "http_port", "https_port", "appid_port",
                "dont_bind_http_https", "min_serv_port_ip_per_task", "max_serv_port_ip_per_task", "framework_name")


class MarathonArgs(msgspec.Struct, frozen=True):
    """The Marathon options of ``fastlb run`` and ``fastlb routes``, marathon-lb's names. The defaults are
    the build's (``MarathonOptions``) and the provider's (``FollowOptions``): the flags default to these."""

    urls: tuple[str, ...]
    groups: tuple[str, ...] = _BUILD.groups
    sse: bool = _FOLLOW.sse
    poll_interval: float = _FOLLOW.poll_interval
    health_check: bool = _BUILD.health_check
    strict_mode: bool = _BUILD.strict_mode
    auth_credentials: str | None = None  # "user:pass"
    auth_credential_file: str | None = None  # a file holding "user:pass"
    dcos_auth_credentials: str | None = None  # DC/OS service account JSON: uid, private_key, login_endpoint
    ca_cert: str | None = None
    min_serv_port_ip_per_task: int = _BUILD.min_serv_port_ip_per_task
    max_serv_port_ip_per_task: int = _BUILD.max_serv_port_ip_per_task
    bind_addr: str = _BUILD.bind_addr
    http_port: int = _BUILD.http_port
    https_port: int = _BUILD.https_port
    appid_port: int = _BUILD.appid_port
    dont_bind_http_https: bool = _BUILD.dont_bind_http_https
    max_backoff: float = _FOLLOW.max_backoff
    framework_name: str = _BUILD.framework_name  # the LB's own app id: never served (framework_name_from())


def framework_name_from(environ: Any) -> str:
    """The app id of this fastlb when Marathon runs it, which it never routes to: marathon-lb's
    $FRAMEWORK_NAME when set, else $MARATHON_APP_ID (Marathon sets it in every task); "" outside
    Marathon."""
    return (environ.get("FRAMEWORK_NAME") or environ.get("MARATHON_APP_ID") or "").strip()


def marathon_provider(args: MarathonArgs) -> Provider:
    """A ``fastlb.marathon.provider.MarathonProvider`` for <args>. Raises ImportError when this build has
    no Marathon provider, ValueError (the message says why) for credentials that cannot be used."""
    from fastlb.marathon.auth import Auth, BasicAuth, ServiceAccountAuth  # noqa: PLC0415 (only with --marathon)
    from fastlb.marathon.provider import MarathonProvider  # noqa: PLC0415

    auth: Auth | None = None
    if args.dcos_auth_credentials is not None:
        auth = ServiceAccountAuth.parse(args.dcos_auth_credentials)
    elif args.auth_credential_file is not None:
        auth = BasicAuth.from_file(args.auth_credential_file)
    elif args.auth_credentials is not None:
        auth = BasicAuth.parse(args.auth_credentials)
    options = MarathonOptions(**{name: getattr(args, name) for name in BUILD_FIELDS})
    return MarathonProvider(
        list(args.urls), options, sse=args.sse, poll_interval=args.poll_interval, auth=auth, ca_cert=args.ca_cert,
        max_backoff=args.max_backoff,
    )
