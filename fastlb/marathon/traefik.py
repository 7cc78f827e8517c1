"""Traefik 1.x's model, for apps labelled only with ``traefik.*``: one service per segment, routed by
its Host/PathPrefix rule on the vhost listener; apps sharing ``traefik.backend`` form one service.
Their labels are parsed in ``traefik_labels.py``. Pure.
"""

from __future__ import annotations

import msgspec

from fastlb import spec
from fastlb.marathon import traefik_labels as tlbl
from fastlb.marathon.candidate import _AppError, _Candidate
from fastlb.marathon.models import App, Task
from fastlb.marathon.options import BuildContext, MarathonOptions
from fastlb.marathon.tasks import (
    backend_id,
    join_address,
    networking_mode,
    port_mappings,
    port_names,
    server_name,
    task_ip,
    task_ports,
    task_state,
)


def _traefik_selected(tl: tlbl.TraefikLabels, options: MarathonOptions) -> bool:
    if tl.enable is False:
        return False
    return "*" in options.groups or bool(set(tl.tags) & set(options.groups))


def _traefik_port(app: App, task: Task, mode: str, seg: tlbl.TraefikSegment) -> tuple[int, int | None] | None:
    """(port, its index among the task's ports or None) of a segment on a task, or None."""
    tports = task_ports(app, task, mode)
    if seg.port is not None:
        if seg.port in tports:
            return seg.port, tports.index(seg.port)
        if mode == "container/bridge":
            for i, pm in enumerate(port_mappings(app)):
                if pm.container_port == seg.port and i < len(tports):
                    return tports[i], i
        return seg.port, None  # used as written, as Traefik does
    if seg.port_name is not None:
        names = port_names(app, mode)
        if seg.port_name in names and names.index(seg.port_name) < len(tports):
            i = names.index(seg.port_name)
            return tports[i], i
        return None
    i = seg.port_index or 0
    return (tports[i], i) if i < len(tports) else None


def _traefik_ip_index(app: App, tl: tlbl.TraefikLabels, port_index: int) -> int:
    if tl.ip_address_idx is not None:
        return tl.ip_address_idx
    mappings = port_mappings(app)
    if port_index < len(mappings) and mappings[port_index].network_names:
        names = mappings[port_index].network_names or ()
        networks = [n.name for n in app.networks or () if n.mode == "container"]
        if len(names) == 1 and names[0] in networks:
            return networks.index(names[0])
    return 0


def _traefik_candidates(app: App, tl: tlbl.TraefikLabels, ctx: BuildContext) -> list[_Candidate]:
    if tl.errors:
        raise _AppError("; ".join(tl.errors))
    mode_net = networking_mode(app)
    result = []
    subdomain = traefik_subdomain(app.id)
    for seg in tl.segments:
        if seg.entry_points is not None and "http" not in seg.entry_points:
            continue  # fastlb has one entry point, "http"; others are not exposed on it
        if seg.backend:
            name = tlbl.traefik_normalize("backend" + seg.backend)
        else:
            name = tlbl.traefik_normalize("backend" + app.id + (f"-service-{seg.name}" if seg.name else ""))
        if seg.rule is not None:
            hosts, paths = seg.rule.hosts, seg.rule.paths
        else:
            host = ".".join(x for x in (seg.name.lower(), subdomain, tl.domain) if x)
            hosts, paths = (host,), ()
        if seg.allowed_hosts is not None:
            # Traefik answers 400 to a Host outside allowedHosts; fastlb keeps those out by routing
            # only allowed hosts, so a rule that routes another cannot be served.
            outside = [h for h in hosts if h not in seg.allowed_hosts]
            if outside:
                prefix = f"traefik.{seg.name}." if seg.name else "traefik."
                raise _AppError(
                    f"{prefix}frontend.headers.allowedHosts={','.join(seg.allowed_hosts)!r}: the rule "
                    f"also routes {', '.join(outside)}, which Traefik would answer with 400; fastlb "
                    "keeps other hosts out only by not routing them"
                )
        backends = []
        for task in app.tasks or ():
            state = task_state(app, task, ctx, frozenset())
            if state is None:
                continue
            picked = _traefik_port(app, task, mode_net, seg)
            if picked is None:
                continue
            port, index = picked
            ip = task_ip(task, mode_net, ctx.resolve, _traefik_ip_index(app, tl, index or 0))
            if ip is None:
                continue
            check = None
            if tl.healthcheck_path is not None:
                check = spec.HealthCheck(
                    kind="http",
                    path=tl.healthcheck_path,
                    port=tl.healthcheck_port,
                    interval_ms=tl.healthcheck_interval_ms,
                    timeout_ms=min(5000, tl.healthcheck_interval_ms),
                )
            backends.append(
                (
                    (task.host or "", port, task.id),
                    spec.Backend(
                        id=backend_id(task.id, index, port),
                        address=join_address(ip, port),
                        weight=seg.weight,
                        state=state,
                        name=server_name(task.host or "", ip, port),
                        check=check,
                    ),
                )
            )
        backends.sort(key=lambda kb: kb[0])
        service = spec.Service(
            name=name,
            mode="http",
            balance=tl.balance,
            backends=tuple(b for _, b in backends),
            http=spec.HttpOptions(
                sticky=tl.sticky,
                sticky_cookie=(tl.sticky_cookie or tlbl.traefik_default_cookie(name))
                if tl.sticky
                else spec.HttpOptions().sticky_cookie,
                redirect_to_https=seg.redirect_to_https,
                auth_realm=tlbl.TRAEFIK_REALM if seg.auth_users else "",
                auth_users=seg.auth_users,
                auth_remove_header=seg.auth_remove_header,
                allow_cidrs=seg.allow_cidrs,
                allow_forwarded_for=seg.allow_forwarded_for,
                # the segment's header fields and redirects
                redirect_to_https_code=seg.redirect_to_https_code,
                redirect_regex=seg.redirect_regex,
                redirect_replacement=seg.redirect_replacement,
                redirect_regex_code=seg.redirect_regex_code,
                request_headers=seg.request_headers,
                response_headers=seg.response_headers,
                sts_seconds=seg.sts_seconds,
                sts_include_subdomains=seg.sts_include_subdomains,
                sts_preload=seg.sts_preload,
                sts_plain=seg.sts_plain,
            ),
        )
        result.append(
            _Candidate(
                owner=app.id,
                members=(app.id,),
                order=(app.id, 0, seg.name),
                service=service,
                listen=None,
                hosts=hosts,
                paths=paths,
                route_weight=seg.priority,
            )
        )
    return result


def traefik_subdomain(app_id: str) -> str:
    """Traefik's default subdomain (groupsAsSubDomains off): ``/foo/bar/app`` -> ``foo-bar-app``."""
    return "-".join(p for p in app_id.strip("/").split("/") if p).lower()


def _access(service: spec.Service) -> tuple:
    """What of a service decides who may use it."""
    h = service.http
    return (
        (h.allow_cidrs, h.allow_forwarded_for, h.auth_realm, h.auth_users, h.auth_remove_header)
        + (h.redirect_to_https, h.redirect_to_https_code, h.redirect_regex, h.redirect_replacement)
        + (h.redirect_regex_code,)
    )


_OPEN = _access(spec.Service(name=""))


def _traefik_refusals(cands: list[_Candidate]) -> dict[str, str]:
    """The apps (owner -> why) that ``_merge_traefik_backends`` must leave out: those whose access
    rules would be dropped, because their tasks join a service whose first app restricts
    otherwise. An app that restricts nothing may join any service (its tasks then take that
    service's rules: narrower, never wider). Leaving an app out can make another app first of a
    service, so this runs until no new app is left out."""
    refused: dict[str, str] = {}
    while True:
        first: dict[str, _Candidate] = {}
        found = False
        for c in cands:
            if c.owner in refused:
                continue
            head = first.setdefault(c.service.name, c)
            mine = _access(c.service)
            if head is not c and mine != _OPEN and mine != _access(head.service):
                other = "another segment of this app" if head.owner == c.owner else head.owner
                refused[c.owner] = (
                    f"traefik.backend: service {c.service.name} is shared with {other}, whose access "
                    "rules (allow-list, auth, redirects) differ: this app's would not apply to its tasks"
                )
                found = True
        if not found:
            return refused


def _merge_traefik_backends(cands: list[_Candidate], errors: dict[str, str]) -> list[_Candidate]:
    """Traefik apps sharing ``traefik.backend`` form one service: the first app (by id) keeps
    its settings and routes, the others add their tasks. An app whose access rules the merge would
    drop is left out, its reason in <errors>."""
    refused = _traefik_refusals(cands)
    errors.update(refused)
    by_name: dict[str, _Candidate] = {}
    out = []
    for c in cands:
        if c.owner in refused:
            continue
        first = by_name.get(c.service.name)
        if first is None:
            by_name[c.service.name] = c
            out.append(c)
            continue
        merged = tuple(sorted(first.service.backends + c.service.backends, key=lambda b: (b.name, b.id)))
        first.service = msgspec.structs.replace(first.service, backends=merged)
        first.members = first.members + c.members
    return out
