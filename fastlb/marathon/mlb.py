"""marathon-lb's model: each selected service port of an app is a service named ``<app id>_<port>``
with its own listener, shaped by the app's ``HAPROXY_{n}_*`` labels; the apps of a blue/green
deployment group are merged into one (marathon-lb §3.2). Pure.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from fastlb import certs, spec
from fastlb.marathon import labels as lbl
from fastlb.marathon.candidate import _AppError, _bind, _Candidate
from fastlb.marathon.models import App, HealthCheckDef, Task
from fastlb.marathon.options import BuildContext, MarathonOptions, _selected
from fastlb.marathon.tasks import (
    _HTTP_CHECKS,
    ServicePortAssigner,
    backend_id,
    has_tcp,
    health_check_for,
    join_address,
    networking_mode,
    port_protocols,
    server_name,
    service_name,
    service_ports,
    spec_check,
    task_ip,
    task_ports,
    task_state,
)

_DEFAULT_RETRIES = spec.Service(name="").retries
_DEFAULT_TIMEOUTS = spec.Timeouts()  # frozen: one instance serves every service that sets none
_DEFAULT_STICKY_COOKIE = spec.HttpOptions().sticky_cookie


# --- deployment groups ----------------------------------------------------------------------------


@dataclass(slots=True)
class _MlbApp:
    app: App
    labels: lbl.AppLabels
    members: tuple[str, ...]  # the Marathon app ids merged into this one
    draining: frozenset[str] = frozenset()


def _healthy_new(app: App, new: App) -> int:
    if not app.health_checks:
        return new.instances or 0
    return sum(
        1
        for task in new.tasks or ()
        if task.health_check_results and any(r.alive for r in task.health_check_results)
    )


def _last_scaling(app: App) -> datetime.datetime | None:
    info = app.version_info
    return lbl.parse_iso_datetime(info.last_scaling_at) if info and info.last_scaling_at else None


def merge_deployment_groups(apps: list[_MlbApp]) -> list[_MlbApp]:
    """marathon-lb's blue/green merge (§3.2): apps sharing HAPROXY_DEPLOYMENT_GROUP become one app
    with id ``/<group>``, the OLD app's definition and labels, every task of both, and N old tasks
    (by task id) drained, N = min(#old, healthy new, max(0, healthy new + old instances - target))."""
    plain: list[_MlbApp] = []
    groups: dict[str, _MlbApp] = {}
    for item in apps:
        group = item.labels.deployment_group
        if group is None:
            plain.append(item)
            continue
        cur = _MlbApp(msgspec.structs.replace(item.app, id=group), item.labels, item.members)
        prev = groups.get(group)
        if prev is None:
            groups[group] = cur
            continue
        # The later HAPROXY_DEPLOYMENT_STARTED_AT is the new app; a missing one counts as the oldest.
        prev_date = prev.labels.deployment_started_at or datetime.datetime.min
        cur_date = cur.labels.deployment_started_at or datetime.datetime.min
        old, new = (prev, cur) if prev_date < cur_date else (cur, prev)
        if new.labels.deployment_new_instances is not None:
            # Hybrid (traffic split) mode: the app scaled last is the new one.
            new_scaled = _last_scaling(new.app)
            old_scaled = _last_scaling(old.app)
            if new_scaled is not None and old_scaled is not None and old_scaled > new_scaled:
                old, new = new, old
            target = new.labels.deployment_target_instances or 0
        else:
            target = 1  # marathon-lb reads TARGET_INSTANCES only in hybrid mode
        old_tasks = sorted(old.app.tasks or (), key=lambda t: t.id)
        healthy = _healthy_new(cur.app, new.app)
        drainable = max(0, healthy + (old.app.instances or 0) - target)
        n = min(len(old_tasks), healthy, drainable)
        drained = old.draining | new.draining | {t.id for t in old_tasks[:n]}
        merged = msgspec.structs.replace(old.app, tasks=(*old_tasks, *(new.app.tasks or ())))
        groups[group] = _MlbApp(merged, old.labels, old.members + new.members, frozenset(drained))
    return plain + [groups[g] for g in sorted(groups)]


# A task that passes the filters, with what every port of it needs: (task, admin state, ip, ports).
# A plain tuple: one is made per task per build.
_Served = tuple[Task, spec.AdminState, str, Sequence[int]]


def _exact_hosts(vhosts: tuple[str, ...]) -> tuple[str, ...]:
    """A port's vhosts without its wildcards: the names its rewrites compare with. marathon-lb sets Host
    to the port's vhost with PROXYPASS_PATH (fastlb: the first of these; none, no Host change), and
    matches REVPROXY_PATH's URLs and REDIR's requests against it (fastlb: all of these)."""
    return tuple(h for h in vhosts if not h.startswith("*."))


def _served_tasks(item: _MlbApp, mode_net: str, ctx: BuildContext) -> list[_Served]:
    served: list[_Served] = []
    app, draining, resolve = item.app, item.draining, ctx.resolve
    gated = ctx.gated(app)
    for task in app.tasks or ():
        state = task_state(app, task, ctx, draining, gated)
        if state is None:
            continue
        ip = task_ip(task, mode_net, resolve)
        if ip is None:
            continue
        # The task's own ports are read, never changed: no copy (task_ports copies them).
        ports = task.ports if task.ports and mode_net != "container" else task_ports(app, task, mode_net)
        served.append((task, state, ip, ports))
    return served


def _port_backends(
    served: list[_Served],
    index: int,
    mode: str,
    hc: HealthCheckDef | None,
    check_index: int,
    pl: lbl.PortLabels,
) -> tuple[spec.Backend, ...]:
    """The servers of service port ``index``: one per served task, sorted as marathon-lb sorts
    them (host string, port), then by task id."""
    keyed: list[tuple[_BackendKey, spec.Backend]] = []
    own_port_check = spec_check(hc, mode, hc.port or 0, pl.healthcheck_rise) if hc is not None else None
    weight = pl.weight if pl.weight is not None else 1
    sticky_check = None
    if hc is None and pl.sticky:
        # marathon-lb's sticky server line carries a bare `check`: HAProxy's default tcp check.
        sticky_check = spec.HealthCheck(rise=pl.healthcheck_rise or spec.HealthCheck().rise)
    for task, state, ip, tports in served:
        if index >= len(tports):
            continue  # ports pair by position; extra ports on either side are ignored
        check: spec.HealthCheck | None
        if hc is not None:
            if not hc.port and check_index != index and check_index < len(tports):
                check = spec_check(hc, mode, tports[check_index], pl.healthcheck_rise)
            else:
                check = own_port_check
        else:
            check = sticky_check
        host = task.host or ""
        port = tports[index]
        backend = spec.Backend(
            id=backend_id(task.id, index),
            address=join_address(ip, port),
            weight=weight,
            state=state,
            name=server_name(host, ip, port),
            check=check,
        )
        keyed.append(((host, port, task.id), backend))
    keyed.sort(key=_backend_key)
    return tuple([b for _, b in keyed])


# How a service's backends sort: (host, port, task id).
_BackendKey = tuple[str, int, str]


def _backend_key(pair: tuple[_BackendKey, spec.Backend]) -> _BackendKey:
    return pair[0]


def _port_selected(labels: lbl.AppLabels, index: int, options: MarathonOptions) -> bool:
    """Whether port <index> of an app is this LB's to serve: its group (HAPROXY_{n}_GROUP, else the
    app's) is selected, and the port is enabled (HAPROXY_{n}_ENABLED, else not --strict-mode)."""
    pl = labels.port(index)
    groups = pl.groups if pl.groups is not None else labels.groups
    if not _selected(groups, options):
        return False
    return pl.enabled if pl.enabled is not None else not options.strict_mode


def udp_notes(item: _MlbApp, options: MarathonOptions) -> tuple[str, ...]:
    """A line for each port of the app this LB would serve that has no TCP side (its protocol is udp
    alone): fastlb serves TCP, so the port gets no listener. The other ports keep their index."""
    app = item.app
    mode = networking_mode(app)
    protocols = port_protocols(app, mode)
    return tuple(
        f"port index {index} ({protocol}): not served, fastlb serves TCP only"
        for index, protocol in enumerate(protocols)
        if not has_tcp(protocol) and _port_selected(item.labels, index, options)
    )

def _mlb_candidates(item: _MlbApp, ctx: BuildContext, assigner: ServicePortAssigner) -> list[_Candidate]:
    app, labels, options = item.app, item.labels, ctx.options
    if labels.errors:
        raise _AppError("; ".join(labels.errors))
    mode_net = networking_mode(app)
    ports = service_ports(app, mode_net, assigner)
    served: list[_Served] | None = None  # only for apps with a port to serve: resolving costs
    result: list[_Candidate] = []
    protocols = port_protocols(app, mode_net)
    for index, declared in enumerate(ports):
        pl = labels.port(index)
        if not _port_selected(labels, index, options):
            continue
        if index < len(protocols) and not has_tcp(protocols[index]):
            continue  # nothing to serve over TCP; said by udp_notes (the indexes of the others stay)
        if declared is None:
            raise _AppError(f"port index {index}: no free service port in the IP-per-task range")
        port = pl.port if pl.port is not None else declared
        if not 1 <= port <= 65535:
            raise _AppError(f"port index {index}: service port {port} cannot be bound")
        hc = health_check_for(app, index)
        mode: str = pl.mode or ("http" if pl.vhosts or (hc is not None and hc.protocol == "HTTP") else "tcp")
        if pl.tls_passthrough:
            if not pl.vhosts:
                raise _AppError(f"FASTLB_{index}_TLS=passthrough needs HAPROXY_{index}_VHOST (the names to route by)")
            if pl.mode == "http" or pl.paths:
                raise _AppError(
                    f"FASTLB_{index}_TLS=passthrough forwards bytes untouched: HAPROXY_{index}_MODE=http and "
                    f"HAPROXY_{index}_PATH cannot apply"
                )
            mode = "tcp"
        check_index = index
        if pl.healthcheck_port_index is not None and 0 <= pl.healthcheck_port_index < len(ports):
            check_index = pl.healthcheck_port_index
            if hc is None:
                hc = health_check_for(app, check_index)
                if hc is not None and (hc.protocol or "HTTP") in _HTTP_CHECKS and not pl.tls_passthrough:
                    mode = "http"
        if served is None:
            served = _served_tasks(item, mode_net, ctx)
        backends = _port_backends(served, index, mode, hc, check_index, pl)
        http = mode == "http"
        if pl.auth and not http:
            # marathon-lb asks for credentials on vhost routes only, which a tcp port has none of:
            # serving the port would leave open what the label closes.
            raise _AppError(
                f"HAPROXY_{index}_AUTH: basic auth needs http mode, and port index {index} is served "
                f"in tcp mode, which would leave it open (set a VHOST or HAPROXY_{index}_MODE=http)"
            )
        tls = _port_tls(pl, index, http)
        timeouts = spec.Timeouts(**dict(pl.timeouts)) if pl.timeouts else _DEFAULT_TIMEOUTS
        http_options = spec.HttpOptions(
            sticky=pl.sticky and http,
            sticky_cookie=pl.sticky_cookie or _DEFAULT_STICKY_COOKIE,
            hsts=pl.hsts and http,
            redirect_to_https=pl.redirect_to_https and http and bool(pl.vhosts),
            auth_realm=pl.auth[0] if pl.auth and http else "",
            auth_users=((pl.auth[1], pl.auth[2]),) if pl.auth and http else (),
            allow_cidrs=pl.allow_cidrs,
            forwarded_headers=pl.forwarded_headers if pl.forwarded_headers is not None else True,
            # marathon-lb's HTTP_BACKEND_PROXYPASS_PATH, REVPROXY_PATH and REDIR (http mode only)
            strip_prefix=pl.proxypass_path if http else "",
            set_host=_exact_hosts(pl.vhosts)[0] if http and pl.proxypass_path and _exact_hosts(pl.vhosts) else "",
            location_prefix=pl.revproxy_path if http else "",
            redirect_root=pl.redirect_path if http else "",
            hosts=_exact_hosts(pl.vhosts) if http and (pl.revproxy_path or pl.redirect_path) else (),
        )
        service = spec.Service(
            name=service_name(app.id, port),
            mode="http" if http else "tcp",
            balance=pl.balance,
            backends=backends,
            timeouts=timeouts,
            retries=pl.retries if pl.retries is not None else _DEFAULT_RETRIES,
            maxconn=pl.maxconn or 0,
            backend_maxconn=pl.backend_maxconn or 0,
            http=http_options,
            app_id="",
            tls=tls,
        )
        weight = pl.backend_weight if pl.backend_weight is not None else 0
        if pl.paths and weight == 0:
            weight = 1  # marathon-lb: a PATH lifts the routing weight from 0 to 1
        result.append(
            _Candidate(
                owner=item.members[0],
                members=item.members,
                order=(app.id, port, ""),
                service=service,
                listen=_bind(pl.bind_addr or options.bind_addr, port),
                hosts=pl.vhosts if http else (),
                paths=pl.paths,
                route_weight=weight,
                sni_hosts=tuple(h.lower() for h in pl.vhosts) if pl.tls_passthrough else (),
            )
        )
    return result


def _port_tls(pl: lbl.PortLabels, index: int, http: bool) -> spec.ServiceTls | None:
    """The port's own TLS (HAPROXY_{n}_SSL_CERT, BIND_OPTIONS' ssl crt and settings), or None."""
    settings = pl.tls_alpn or pl.tls_min_version or pl.tls_ciphers or pl.tls_ciphersuites or pl.tls_verify
    if pl.ssl_cert is None:
        if pl.tls_ssl or settings:
            raise _AppError(
                f"HAPROXY_{index}_BIND_OPTIONS: ssl, alpn, ssl-min-ver, ciphers and verify need a certificate "
                f"(crt <path>, or HAPROXY_{index}_SSL_CERT); the port would be served without TLS"
            )
        return None
    problems = certs.option_problems(pl.tls_alpn, pl.tls_min_version, pl.tls_ciphers, pl.tls_ciphersuites, http)
    if problems:
        raise _AppError(f"HAPROXY_{index}_BIND_OPTIONS: " + "; ".join(problems))
    return spec.ServiceTls(
        certs=(pl.ssl_cert,), alpn=pl.tls_alpn, min_version=pl.tls_min_version, ciphers=pl.tls_ciphers,
        ciphersuites=pl.tls_ciphersuites, verify=pl.tls_verify, ca_file=pl.tls_ca_file,
    )
