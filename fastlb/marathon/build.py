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
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import msgspec

from fastlb import spec
from fastlb.marathon import labels as lbl
from fastlb.marathon.candidate import _AppError, _bind, _Candidate, _RouteKey  # noqa: F401
from fastlb.marathon.mlb import (  # noqa: F401
    _DEFAULT_RETRIES,
    _DEFAULT_STICKY_COOKIE,
    _DEFAULT_TIMEOUTS,
    _backend_key,
    _BackendKey,
    _exact_hosts,
    _healthy_new,
    _last_scaling,
    _mlb_candidates,
    _MlbApp,
    _port_backends,
    _Served,
    _served_tasks,
    merge_deployment_groups,
)
from fastlb.marathon.models import (
    App,
    Task,
)
from fastlb.marathon.options import BuildContext, BuildResult, MarathonOptions, _group_set, _selected  # noqa: F401
from fastlb.marathon.tasks import (  # noqa: F401
    _CANONICAL_IPV4,
    _HTTP_CHECKS,
    _NO_ASSIGNER,
    _OCTET,
    _SERVER_NAME,
    _SERVER_NAME_BYTES,
    _TCP_CHECKS,
    DRAINING_STATES,
    EXCLUDED_STATES,
    ServicePortAssigner,
    _ip_literal,
    _ip_literal_slow,
    backend_id,
    container_ports,
    declared_service_ports,
    health_check_for,
    join_address,
    networking_mode,
    port_mappings,
    port_names,
    server_name,
    service_name,
    service_ports,
    spec_check,
    task_ip,
    task_of_backend,
    task_ports,
    task_state,
)
from fastlb.marathon.traefik import (  # noqa: F401
    _OPEN,
    _access,
    _merge_traefik_backends,
    _traefik_candidates,
    _traefik_ip_index,
    _traefik_port,
    _traefik_refusals,
    _traefik_selected,
    traefik_subdomain,
)


class BuildMemo:
    """What one build learnt per app, for the next. An app whose payload is the same object and
    whose every lookup (host names, Marathon health, readiness) answers as before is not rebuilt.
    When the apps that changed keep the shape of their services (the usual task event), the last
    table is patched instead (``_patch``): the apps that changed, found by one identity check per
    app unless the caller names them.
    The result never depends on the memo: only the time to reach it does."""

    def __init__(self) -> None:
        self.labels: dict[str, tuple[App, lbl.AppLabels, lbl.TraefikLabels, bool]] = {}
        self.candidates: dict[str, tuple[App, list[tuple[str, object, object]], list[_Candidate]]] = {}
        self.last: _LastBuild | None = None  # how to patch the last table, when it can be patched


@dataclass(slots=True)
class _LastBuild:
    """The last build, as ``_patch`` needs it. Kept only for a build made of plain marathon-lb
    apps (no Traefik app, no blue/green group, no assigned service port): there, an app's
    services depend on that app alone once the conflicts are settled."""

    options: MarathonOptions
    apps: dict[str, App]  # every app given, by id
    watch: set[str]  # apps whose build asked the lookups something: asked again each time
    final: list[_Candidate]  # the candidates behind result.table.services, in that order
    groups: list[list[_Candidate]]  # the apps kept, as _TaskIndex takes them
    group_at: dict[str, int]  # app id -> its index in groups
    result: BuildResult


class _Recorder(Mapping[str, bool]):
    """Stands in for a BuildContext's lookups while one app is built, noting each answer."""

    def __init__(self, ctx: BuildContext) -> None:
        self._ctx = ctx
        self.deps: list[tuple[str, object, object]] = []

    def resolve(self, host: str) -> str | None:
        answer = self._ctx.resolve(host)
        self.deps.append(("resolve", host, answer))
        return answer

    def ready(self, app: App, task: Task) -> bool:
        answer = self._ctx.ready(app, task)
        self.deps.append(("ready", task, answer))
        return answer

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        answer = self._ctx.alive.get(key, default)  # type: ignore[call-overload]
        self.deps.append(("alive", key, answer))
        return answer

    def __getitem__(self, key: str) -> bool:
        return self._ctx.alive[key]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._ctx.alive)

    def __len__(self) -> int:
        return len(self._ctx.alive)

    def context(self) -> BuildContext:
        ctx = self._ctx  # not dataclasses.replace: this runs once per app per build
        return BuildContext(
            options=ctx.options, resolve=self.resolve, alive=self, ready=self.ready, gated=ctx.gated
        )


def _parse_labels(app: App) -> tuple[lbl.AppLabels, lbl.TraefikLabels, bool]:
    """The app's marathon-lb/fastlb labels, its Traefik labels, and whether Traefik's model
    applies (``traefik.*`` labels and no ``HAPROXY_*``/``FASTLB_*`` one)."""
    items = tuple((app.labels or {}).items())
    try:
        return _parse_label_items(items)
    except TypeError:  # a value that cannot be hashed (a hand-built App): parsed, not remembered
        return _parse_label_items.__wrapped__(items)


@functools.lru_cache(maxsize=4096)
def _parse_label_items(
    items: tuple[tuple[str, str | None], ...],
) -> tuple[lbl.AppLabels, lbl.TraefikLabels, bool]:
    """Parsing depends on the labels alone, and the parsed forms are immutable: apps with the same
    labels (most of a large cluster shares a few label sets) share one parse."""
    labels = {k: v for k, v in items if v is not None}
    hl, tl = lbl.parse_haproxy_labels(labels), lbl.parse_traefik_labels(labels)
    traefik_model = tl.present and not any(k.startswith(("HAPROXY_", "FASTLB_")) for k in labels)
    return hl, tl, traefik_model


def _unchanged(app: App, deps: list[tuple[str, object, object]], ctx: BuildContext) -> bool:
    for kind, key, answer in deps:
        if kind == "resolve":
            now: object = ctx.resolve(key)  # type: ignore[arg-type]
        elif kind == "alive":
            now = ctx.alive.get(key, False)  # type: ignore[call-overload]
        else:
            now = ctx.ready(app, key)  # type: ignore[arg-type]
        if now != answer:
            return False
    return True


def _mlb_candidates_memo(
    item: _MlbApp, ctx: BuildContext, assigner: ServicePortAssigner, memo: BuildMemo | None, fresh: dict
) -> list[_Candidate]:
    """``_mlb_candidates``, reusing the last build's result for an app that has not changed."""
    app = item.app
    if memo is None:
        return _mlb_candidates(item, ctx, assigner)
    cached = memo.candidates.get(app.id)
    if cached is not None and cached[0] is app and _unchanged(app, cached[1], ctx):
        # Only apps that take no assigned port are remembered: that depends on the app alone.
        fresh[app.id] = cached
        return cached[2]
    mode = networking_mode(app)
    if mode == "container" and not declared_service_ports(app, mode):
        return _mlb_candidates(item, ctx, assigner)  # assigned ports depend on the other apps
    recorder = _Recorder(ctx)
    candidates = _mlb_candidates(item, recorder.context(), assigner)
    fresh[app.id] = (app, recorder.deps, candidates)
    return candidates








# --- candidates -----------------------------------------------------------------------------------






class _TaskIndex(Mapping[str, tuple[str, ...]]):
    """Task id -> its backend ids in the table (sorted), made from the apps' own indexes on first
    use: the table is handed out without waiting for it, and a build that reuses most apps merges
    their indexes instead of walking every backend."""

    def __init__(
        self,
        groups: list[list[_Candidate]],
        base: _TaskIndex | None = None,
        swaps: Sequence[tuple[list[_Candidate], list[_Candidate]]] = (),
    ) -> None:
        """<base>, when given and already made: the index of a table that differs from this one
        by <swaps> alone (an app's old candidates, its new ones)."""
        self._groups: list[list[_Candidate]] | None = groups
        self._index: dict[str, tuple[str, ...]] = {}
        self._shared = False  # some task is in two apps
        self._base = base if base is not None and base._groups is None and not base._shared else None
        self._swaps = swaps

    def _built(self) -> dict[str, tuple[str, ...]]:
        if self._groups is not None:
            if self._base is None or not self._patched():
                self._index = {}
                self._merge(self._groups)
            self._groups, self._base, self._swaps = None, None, ()
        return self._index

    def _patched(self) -> bool:
        assert self._base is not None
        index = dict(self._base._index)
        for old, _ in self._swaps:
            for task in _group_tasks(old):
                del index[task]
        for _, new in self._swaps:
            tasks = _group_tasks(new)
            if not index.keys().isdisjoint(tasks):
                return False
            index.update(tasks)
        self._index = index
        return True

    def _merge(self, groups: list[list[_Candidate]]) -> None:
        index = self._index
        for cands in groups:
            tasks = _group_tasks(cands)
            if index.keys().isdisjoint(tasks):
                index.update(tasks)
            else:  # a task Marathon lists in two apps: its ids are merged
                self._shared = True
                for task, ids in tasks.items():
                    index[task] = tuple(sorted(set(index.get(task, ())) | set(ids)))

    def __getitem__(self, task_id: str) -> tuple[str, ...]:
        return self._built()[task_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())


def _group_tasks(cands: list[_Candidate]) -> dict[str, tuple[str, ...]]:
    """Task id -> its backend ids (sorted, each once) in one app's services."""
    first = cands[0]
    if first._group_tasks is None:
        ids: dict[str, set[str]] = {}
        for c in cands:
            for b in c.service.backends:
                ids.setdefault(task_of_backend(b.id), set()).add(b.id)
        first._group_tasks = {task: tuple(sorted(v)) for task, v in ids.items()}
    return first._group_tasks



















# --- the table ------------------------------------------------------------------------------------


def _app_id(app: App) -> str:
    return app.id


def _shape(c: _Candidate) -> tuple:
    """All of a candidate that other apps' outcomes, the listeners, the routes and the app-id
    rule depend on: two candidates of one shape differ in their backends alone."""
    s = c.service
    return (c.order, c.owner, c.members, c.listen, s.name, s.mode, bool(s.backends), c.hosts, c.paths) + (
        c.route_weight,
    )


def _patch(
    apps: Collection[App], ctx: BuildContext, memo: BuildMemo, replaced: Mapping[str, App | None] | None = None
) -> BuildResult | None:
    """The last table with the services of the apps that changed since replaced, or None when
    that would not be the table a whole build makes (then the caller makes one).

    It is when every app that changed is a plain marathon-lb app before and after, asks no host
    name, and keeps the shape of every candidate (``_shape``): the conflicts, listeners, routes,
    app-id rule, errors and warnings of the last build all stand, and only the changed apps'
    backends differ. Costs one identity check per app, or none with <replaced> (every app put,
    replaced or removed since the last build, by id; None for one removed), plus the apps that
    changed."""
    last = memo.last
    assert last is not None
    if ctx.options != last.options or len(apps) != len(last.apps):
        return None
    if replaced is None:
        changed = [app for app in apps if last.apps.get(app.id) is not app]
    elif None in replaced.values():
        return None  # an app went: its services, and the conflicts it settled, go too
    else:
        changed = [app for app_id, app in replaced.items() if last.apps.get(app_id) is not app]  # type: ignore[misc]
    known = {app.id for app in changed}
    for app_id in last.watch:
        if app_id in known:
            continue
        app = last.apps[app_id]
        if not _unchanged(app, memo.candidates[app_id][1], ctx):
            changed.append(app)
            known.add(app_id)
    if not changed:
        return last.result
    if any(app.id not in last.apps for app in changed) or len(changed) > len(apps) // 4 + 1:
        return None  # a new app, or so many changes that a whole build costs about the same
    options = ctx.options
    if options.framework_name and any(app.id == "/" + options.framework_name.strip("/") for app in changed):
        return None  # the app of the LB itself, never served
    errors, warnings = last.result.errors, last.result.warnings
    updates: list[tuple[App, tuple, tuple[App, list, list[_Candidate]]]] = []
    for app in changed:
        old_labels = memo.labels.get(app.id)
        old_cands = memo.candidates.get(app.id)
        if old_labels is None or old_cands is None or app.id in errors:
            return None  # the app was not a plain, served marathon-lb app
        if any(kind == "resolve" for kind, _, _ in old_cands[1]):
            return None  # it asked for host names: the build's lookups would change
        parsed = (app, *_parse_labels(app))
        _, hl, _, traefik_model = parsed
        if traefik_model or hl.errors or hl.deployment_group is not None:
            return None
        if (hl.warnings or None) != warnings.get(app.id):
            return None
        mode = networking_mode(app)
        if mode == "container" and not declared_service_ports(app, mode):
            return None  # assigned service ports depend on the other apps
        recorder = _Recorder(ctx)
        try:
            cands = _mlb_candidates(_MlbApp(app, hl, (app.id,)), recorder.context(), _NO_ASSIGNER)
        except _AppError:
            return None
        if any(kind == "resolve" for kind, _, _ in recorder.deps):
            return None  # host names: the build's lookups would change
        if [_shape(c) for c in cands] != [_shape(c) for c in old_cands[2]]:
            return None
        updates.append((app, parsed, (app, recorder.deps, cands)))

    final = list(last.final)
    services = list(last.result.table.services)
    groups = list(last.groups)
    swaps: list[tuple[list[_Candidate], list[_Candidate]]] = []
    for app, parsed, entry in updates:
        before, cands = memo.candidates[app.id][2], entry[2]
        successor = dict(zip([id(c) for c in before], cands, strict=True))  # old candidate's id -> new one
        lo = bisect.bisect_left(final, app.id, key=_app_of)
        hi = bisect.bisect_right(final, app.id, key=_app_of)
        for i in range(lo, hi):
            new = successor[id(final[i])]
            services[i] = new.with_app_id() if services[i] is not final[i].service else new.service
            final[i] = new
        if app.id in last.group_at:
            groups[last.group_at[app.id]] = cands
            swaps.append((before, cands))
        memo.labels[app.id] = parsed
        memo.candidates[app.id] = entry
        last.apps[app.id] = app
        if entry[1]:
            last.watch.add(app.id)
        else:
            last.watch.discard(app.id)
    result = BuildResult(
        table=msgspec.structs.replace(last.result.table, services=tuple(services)),
        errors=errors,
        warnings=warnings,
        backends_by_task=_TaskIndex(groups, last.result.backends_by_task, swaps),  # type: ignore[arg-type]
        lookups=last.result.lookups,
    )
    last.final, last.groups, last.result = final, groups, result
    return result


def _app_of(c: _Candidate) -> str:
    return c.order[0]


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
    traefik: list[tuple[App, lbl.TraefikLabels]] = []
    new_labels: dict[str, tuple[App, lbl.AppLabels, lbl.TraefikLabels, bool]] = {}
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
    shared: dict[str, str] = {}
    if vhost_on:
        shared[_bind(options.bind_addr, options.http_port)] = "the vhost (http) listener"
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
        if vhost_on and c.hosts:
            routes.extend(c.routes())
    if vhost_on:
        listeners.append(spec.Listener(address=_bind(options.bind_addr, options.http_port), kind="vhost"))
    if options.appid_port and any(s.app_id for s in services):
        listeners.append(spec.Listener(address=_bind(options.bind_addr, options.appid_port), kind="appid"))
    routes.sort(key=_route_key)

    if memo is not None:
        memo.labels, memo.candidates = new_labels, fresh
    table = spec.RouteTable(
        services=tuple(services),
        listeners=tuple(listeners),
        http_routes=tuple(r for _, r in routes),
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
