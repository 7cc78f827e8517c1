"""What makes a Marathon event cheap: the memo of the last build (``BuildMemo``: each app's parsed
labels, its candidates and the lookups they asked), the patch of the last table when only backends
changed (``_patch``), and the index of tasks to backend ids, made on first use. The result never
depends on them, only the time to reach it. Pure.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass

import msgspec

from fastlb.marathon import labels as lbl
from fastlb.marathon import traefik_labels as tlbl
from fastlb.marathon.candidate import _AppError, _Candidate
from fastlb.marathon.mlb import _mlb_candidates, _MlbApp, udp_notes
from fastlb.marathon.models import App, Task
from fastlb.marathon.options import BuildContext, BuildResult, MarathonOptions
from fastlb.marathon.tasks import (
    _NO_ASSIGNER,
    ServicePortAssigner,
    declared_service_ports,
    networking_mode,
    task_of_backend,
)


class BuildMemo:
    """What one build learnt per app, for the next. An app whose payload is the same object and
    whose every lookup (host names, Marathon health, readiness) answers as before is not rebuilt.
    When the apps that changed keep the shape of their services (the usual task event), the last
    table is patched instead (``_patch``): the apps that changed, found by one identity check per
    app unless the caller names them.
    The result never depends on the memo: only the time to reach it does."""

    def __init__(self) -> None:
        self.labels: dict[str, tuple[App, lbl.AppLabels, tlbl.TraefikLabels, bool]] = {}
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


def _parse_labels(app: App) -> tuple[lbl.AppLabels, tlbl.TraefikLabels, bool]:
    """The app's marathon-lb/fastlb labels, its Traefik labels, and whether Traefik's model
    applies (``traefik.*`` labels and no ``HAPROXY_*``/``FASTLB_*`` one)."""
    items = tuple((app.labels or {}).items())
    if lbl.names_certificate(app.labels):  # the outcome depends on the file too: read it again
        return _parse_label_items.__wrapped__(items)
    try:
        return _parse_label_items(items)
    except TypeError:  # a value that cannot be hashed (a hand-built App): parsed, not remembered
        return _parse_label_items.__wrapped__(items)


@functools.lru_cache(maxsize=4096)
def _parse_label_items(
    items: tuple[tuple[str, str | None], ...],
) -> tuple[lbl.AppLabels, tlbl.TraefikLabels, bool]:
    """Parsing depends on the labels alone, and the parsed forms are immutable: apps with the same
    labels (most of a large cluster shares a few label sets) share one parse."""
    labels = {k: v for k, v in items if v is not None}
    hl, tl = lbl.parse_haproxy_labels(labels), tlbl.parse_traefik_labels(labels)
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


def _shape(c: _Candidate) -> tuple:
    """All of a candidate that other apps' outcomes, the listeners, the routes and the app-id
    rule depend on: two candidates of one shape differ in their backends alone."""
    s = c.service
    return (c.order, c.owner, c.members, c.listen, s.name, s.mode, bool(s.backends), c.hosts, c.paths) + (
        c.route_weight,
        c.sni_hosts,
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
        item = _MlbApp(app, hl, (app.id,))
        if (hl.warnings + udp_notes(item, options) or None) != warnings.get(app.id):
            return None
        mode = networking_mode(app)
        if mode == "container" and not declared_service_ports(app, mode):
            return None  # assigned service ports depend on the other apps
        recorder = _Recorder(ctx)
        try:
            cands = _mlb_candidates(item, recorder.context(), _NO_ASSIGNER)
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
