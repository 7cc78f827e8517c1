"""Marathon apps -> ``spec.RouteTable``: pure and deterministic.

The same apps, options and lookups always give the same table, whatever order Marathon listed
them in. marathon-lb's model is the default (``docs/internals/marathon.md`` has every rule and
each place where fastlb differs on purpose):

- each selected service port of an app is a ``Service`` named ``<app id>_<port>`` with a
  ``Listener`` at ``<bind addr>:<port>``;
- ``HAPROXY_{n}_VHOST`` adds ``HttpRoute``s on the shared vhost listener;
- the first http-mode service of an app carries its ``app_id`` for the app-id listener;
- each task that passes marathon-lb's filters is a ``Backend``; tasks Marathon is killing are kept
  with state "drain", as are the old tasks that a blue/green (``HAPROXY_DEPLOYMENT_GROUP``)
  merge drains.

Apps labelled only with ``traefik.*`` follow Traefik's model instead: one service per segment,
routed by its Host/PathPrefix rule on the vhost listener.

One app whose labels or ports cannot be served is left out whole, with its reason in
``BuildResult.errors``; every other app is served.

``build_table`` settles the conflicts between apps and assembles the table; the parts, imported one
way: ``options`` (what a build takes and gives) -> ``tasks`` (a task as a server) -> ``candidate``
-> ``mlb`` and ``traefik`` (the two models) -> ``incremental`` (the memo and the patch) -> here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping

from fastlb import spec
from fastlb.marathon import labels as lbl
from fastlb.marathon import traefik_labels as tlbl
from fastlb.marathon.candidate import _AppError, _bind, _Candidate, _RouteKey
from fastlb.marathon.incremental import (
    BuildMemo,
    _LastBuild,
    _mlb_candidates_memo,
    _parse_labels,
    _patch,
    _TaskIndex,
)
from fastlb.marathon.mlb import _MlbApp, merge_deployment_groups, udp_notes
from fastlb.marathon.models import App
from fastlb.marathon.options import BuildContext, BuildResult, _selected
from fastlb.marathon.tasks import ServicePortAssigner
from fastlb.marathon.traefik import _merge_traefik_backends, _traefik_candidates, _traefik_selected


def _app_id(app: App) -> str:
    return app.id








def _group_order(cands: list[_Candidate]) -> tuple:
    return cands[0].order if cands else ()


def _candidate_order(c: _Candidate) -> tuple:
    return c.order


def _route_key(pair: tuple[_RouteKey, spec.HttpRoute]) -> _RouteKey:
    return pair[0]


def build_table(
    apps: Iterable[App],
    ctx: BuildContext,
    memo: BuildMemo | None = None,
    replaced: Mapping[str, App | None] | None = None,
) -> BuildResult:
    """The table of <apps>. <memo>: what the last build learnt, reused where it still holds.
    <replaced>: every app put, replaced (by id, the new object) or removed (None) since the build
    that made <memo>, when the caller knows them; it spares a pass over every app."""
    if memo is not None and memo.last is not None:
        if not isinstance(apps, Collection):
            apps = list(apps)
        patched = _patch(apps, ctx, memo, replaced)
        if patched is not None:
            return patched
    lookups: dict[str, str | None] = {}
    outer = ctx.resolve

    def resolve(host: str) -> str | None:
        if host not in lookups:
            lookups[host] = outer(host)
        return lookups[host]

    ctx = dataclasses.replace(ctx, resolve=resolve)
    options = ctx.options
    errors: dict[str, str] = {}
    warnings: dict[str, tuple[str, ...]] = {}
    mlb: list[_MlbApp] = []
    traefik: list[tuple[App, tlbl.TraefikLabels]] = []
    new_labels: dict[str, tuple[App, lbl.AppLabels, tlbl.TraefikLabels, bool]] = {}
    fresh: dict[str, tuple[App, list[tuple[str, object, object]], list[_Candidate]]] = {}
    self_id = "/" + options.framework_name.strip("/") if options.framework_name else None
    old_labels = memo.labels if memo is not None else {}
    ordered = sorted(apps, key=_app_id)
    for app in ordered:
        if app.id == self_id:
            continue
        parsed = old_labels.get(app.id)
        if parsed is None or parsed[0] is not app:
            parsed = (app, *_parse_labels(app))
        new_labels[app.id] = parsed
        _, hl, tl, traefik_model = parsed
        if traefik_model:
            if tl.warnings:
                warnings[app.id] = tl.warnings
            if _traefik_selected(tl, options):
                traefik.append((app, tl))
            continue
        if hl.warnings:
            warnings[app.id] = hl.warnings
        if hl.errors:
            # Only an app this LB would serve is reported; a bad label elsewhere is not our business.
            if _selected(hl.groups, options) or any(
                p.groups and _selected(p.groups, options) for p in hl.ports.values()
            ):
                errors[app.id] = "; ".join(hl.errors)
            continue
        mlb.append(_MlbApp(app, hl, (app.id,)))

    assigner = ServicePortAssigner(options.min_serv_port_ip_per_task, options.max_serv_port_ip_per_task)
    per_app: list[list[_Candidate]] = []
    for item in merge_deployment_groups(mlb):
        notes = udp_notes(item, options)
        for member in item.members if notes else ():
            warnings[member] = warnings.get(member, ()) + notes
        try:
            per_app.append(_mlb_candidates_memo(item, ctx, assigner, memo, fresh))
        except _AppError as e:
            for member in item.members:
                errors[member] = str(e)
    traefik_cands: list[_Candidate] = []
    for app, tl in traefik:
        try:
            traefik_cands.extend(_traefik_candidates(app, tl, ctx))
        except _AppError as e:
            errors[app.id] = str(e)
    per_app.extend([c] for c in _merge_traefik_backends(traefik_cands, errors))

    vhost_on = options.http_port != 0 and not options.dont_bind_http_https
    https_on = options.https_port != 0 and not options.dont_bind_http_https
    shared: dict[str, str] = {}
    if vhost_on:
        shared[_bind(options.bind_addr, options.http_port)] = "the vhost (http) listener"
    if https_on:
        shared[_bind(options.bind_addr, options.https_port)] = "the vhost (https) listener"
    if options.appid_port:
        shared[_bind(options.bind_addr, options.appid_port)] = "the app-id listener"

    # Conflicts: the app that sorts first keeps an address or a service name; a later app that
    # asks for it is left out whole (an empty service still holds its port, so a scale to zero
    # does not hand the port to another app).
    taken: dict[str, str] = dict(shared)
    names: dict[str, str] = {}
    kept: list[_Candidate] = []
    kept_groups: list[list[_Candidate]] = []
    for cands in sorted(per_app, key=_group_order):
        if not cands:
            continue
        owner = cands[0].owner
        problem = None
        mine: dict[str, str] = {}
        my_names: set[str] = set()
        for c in cands:
            if c.listen is not None:
                holder = taken.get(c.listen) or mine.get(c.listen)
                if holder is not None:
                    problem = f"{c.listen} is already served by {holder}"
                    break
                mine[c.listen] = f"{owner} ({c.service.name})"
            if c.service.name in names or c.service.name in my_names:
                holder = names.get(c.service.name, owner)
                problem = f"service name {c.service.name} is already used by {holder}"
                break
            my_names.add(c.service.name)
        if problem is not None:
            for member in cands[0].members:
                errors[member] = problem
            continue
        taken.update(mine)
        names.update(dict.fromkeys(my_names, owner))
        kept.extend(cands)
        kept_groups.append(cands)

    # Empty services vanish (marathon-lb §3.8); draining backends count, so a service whose
    # tasks are all being killed keeps serving the connections it has.
    kept = [c for c in kept if c.service.backends]
    kept.sort(key=_candidate_order)

    services: list[spec.Service] = []
    listeners: list[spec.Listener] = []
    routes: list[tuple[_RouteKey, spec.HttpRoute]] = []
    sni_routes: list[spec.SniRoute] = []
    https_on = options.https_port != 0 and not options.dont_bind_http_https
    appid_seen: set[str] = set()
    for c in kept:
        service = c.service
        # The app-id rule goes to the first http service of each app (marathon-lb §3.12).
        if c.listen is not None and service.mode == "http" and c.order[0] not in appid_seen:
            appid_seen.add(c.order[0])
            if options.appid_port:
                service = c.with_app_id()
        services.append(service)
        if c.listen is not None:
            listeners.append(c.listener())
        if (vhost_on or https_on) and c.hosts:
            routes.extend(c.routes())
        if https_on and c.sni_hosts:
            sni_routes.extend(c.sni_routes())
    if vhost_on:
        listeners.append(spec.Listener(address=_bind(options.bind_addr, options.http_port), kind="vhost"))
    if https_on:  # the same vhosts, over TLS (the certificates are the controller's: --ssl-certs, the labels)
        listeners.append(spec.Listener(address=_bind(options.bind_addr, options.https_port), kind="vhost", tls=True))
    if options.appid_port and any(s.app_id for s in services):
        listeners.append(spec.Listener(address=_bind(options.bind_addr, options.appid_port), kind="appid"))
    routes.sort(key=_route_key)

    if memo is not None:
        memo.labels, memo.candidates = new_labels, fresh
    table = spec.RouteTable(
        services=tuple(services),
        listeners=tuple(listeners),
        http_routes=tuple(r for _, r in routes),
        sni_routes=tuple(sni_routes),
    )
    result = BuildResult(
        table=table,
        errors=dict(sorted(errors.items())),
        warnings=dict(sorted(warnings.items())),
        backends_by_task=_TaskIndex(kept_groups),
        lookups=dict(sorted(lookups.items())),
    )
    if memo is not None:
        plain = not traefik and all(
            item.labels.deployment_group is None and (item.app.id in fresh or item.app.id in errors)
            for item in mlb
        )
        memo.last = None
        if plain:
            memo.last = _LastBuild(
                options=options,
                apps={app.id: app for app in ordered},
                watch={app_id for app_id, (_, deps, _) in fresh.items() if deps},
                final=kept,
                groups=kept_groups,
                group_at={cands[0].order[0]: i for i, cands in enumerate(kept_groups)},
                result=result,
            )
    return result
