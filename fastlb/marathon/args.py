"""The Marathon options of ``fastlb run`` and ``fastlb routes`` (marathon-lb's names), and the provider
made from them. The provider itself (``fastlb.marathon.provider``: asyncio, HTTP) is imported only
when --marathon is given.
"""

from __future__ import annotations

import inspect
from typing import Any

import msgspec

from fastlb.provider import Provider


class MarathonArgs(msgspec.Struct, frozen=True):
    """The Marathon options of ``fastlb run`` and ``fastlb routes``, marathon-lb's names."""

    urls: tuple[str, ...]
    groups: tuple[str, ...] = ("external",)
    sse: bool = True
    poll_interval: float = 60.0
    health_check: bool = False
    strict_mode: bool = False
    auth_credentials: str | None = None  # "user:pass"
    auth_credential_file: str | None = None  # a file holding "user:pass"
    dcos_auth_credentials: str | None = None  # DC/OS service account JSON: uid, private_key, login_endpoint
    ca_cert: str | None = None
    min_serv_port_ip_per_task: int = 10050
    max_serv_port_ip_per_task: int = 10100
    bind_addr: str = "0.0.0.0"
    http_port: int = 80
    https_port: int = 443
    appid_port: int = 9091
    dont_bind_http_https: bool = False
    max_backoff: float = 300.0
    framework_name: str = ""  # the LB's own app id: never served (framework_name_from())


def framework_name_from(environ: Any) -> str:
    """The app id of this fastlb when Marathon runs it, which it never routes to: marathon-lb's
    $FRAMEWORK_NAME when set, else $MARATHON_APP_ID (Marathon sets it in every task); "" outside
    Marathon."""
    return (environ.get("FRAMEWORK_NAME") or environ.get("MARATHON_APP_ID") or "").strip()


def _accepted(target: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The subset of <values> that <target> (a msgspec Struct or a callable) takes by keyword."""
    if isinstance(target, type) and issubclass(target, msgspec.Struct):
        names = {f.name for f in msgspec.structs.fields(target)}
    else:
        params = inspect.signature(target).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return values
        names = set(params)
    return {k: v for k, v in values.items() if k in names}


def marathon_provider(args: MarathonArgs) -> Provider:
    """A ``fastlb.marathon.provider.MarathonProvider`` for <args>. Raises ImportError when this build has
    no Marathon provider, ValueError (the message says why) for credentials that cannot be used."""
    from fastlb.marathon.auth import BasicAuth, ServiceAccountAuth  # noqa: PLC0415 (only with --marathon)
    from fastlb.marathon.provider import MarathonProvider  # noqa: PLC0415
    from fastlb.marathon.state import MarathonOptions  # noqa: PLC0415

    values = msgspec.structs.asdict(args)
    credentials = values.pop("auth_credentials")
    credential_file = values.pop("auth_credential_file")
    service_account = values.pop("dcos_auth_credentials")
    if service_account is not None:
        values["auth"] = ServiceAccountAuth.parse(service_account)
    elif credential_file is not None:
        values["auth"] = BasicAuth.from_file(credential_file)
    elif credentials is not None:
        values["auth"] = BasicAuth.parse(credentials)
    options = MarathonOptions(**_accepted(MarathonOptions, values))
    kwargs = _accepted(MarathonProvider, {k: v for k, v in values.items() if k != "urls"})
    kwargs.pop("options", None)
    return MarathonProvider(list(args.urls), options, **kwargs)
