"""``infra report FILE...|ROLLOUT --html OUT``: one static, self-contained HTML page (docs/report.md).

Per environment: the plan summary of its last run that planned, the estimated cost per pool
(``cost``), the capacity and placement tables (``blueprint.capacity``, the placement proof of
``render.kubernetes.placement``), the last runs with the state of their audit chain
(``records_audit``, local heads only: nothing is fetched), and, where a cluster answers, its
queued jobs and why they wait. Above them, the rollout's order as an inline SVG and a table.

``collect`` reads (it starts, locks and writes nothing); ``render`` is pure: data in, text out.
Every value that comes from a blueprint, a record or a cluster is escaped (``html.escape``) where
it is written into the page: nothing from them is ever a template. The page has inline CSS only,
no script, no external resource, and a Content-Security-Policy saying so. The whole text goes
through ``secrets.redact`` last (the blueprint's secret references are resolved only to be
scrubbed: their values are never shown).
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__

if TYPE_CHECKING:
    from .blueprint.rollout import Rollout, RolloutEnv
    from .cost import Estimate

PROBE_WITHIN = 3.0  # seconds to open a TCP connection to a cluster's API before saying it is unreachable
_OK_OUTCOMES = ("success", "no-changes")
_BAD_OUTCOMES = ("failed", "lost", "interrupted", "cancelled", "locked", "corrupt")


@dataclass
class Placement:
    """One pod infra renders: where the scheduler's predicates let it land, or why nowhere."""

    pod: str
    lands_on: list[str]
    problems: list[str]


@dataclass
class Queues:
    """A cluster's queued, running and finished jobs (``rows``), or why none were read (``note``)."""

    note: str | None = None
    server: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class EnvPage:
    name: str
    provider: str
    file: str
    region: str | None
    after: list[str]
    cost: Estimate
    pools: list[dict[str, Any]]
    teams: list[dict[str, Any]]
    guarantees: dict[str, dict[str, int]]
    nodes: list[dict[str, Any]]
    placement: list[Placement]
    placement_note: str | None
    runs: list[dict[str, Any]]          # newest last; a corrupt file: {"seq", "file", "corrupt"}
    total_runs: int
    chain_problems: list[str]
    chain_warnings: list[str]
    heads_matched: list[str]
    last_plan: dict[str, Any] | None    # the last record with a plan summary
    queues: Queues
    #: per team: local GPUs and, for a team that bursts (docs/hybrid.md), its burst cap and what each
    #: worker guarantees it (``blueprint.hybrid.capacity_rows``); empty when no team bursts
    burst: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last_run(self) -> dict[str, Any] | None:
        return next((r for r in reversed(self.runs) if "corrupt" not in r), None)


@dataclass
class Page:
    title: str
    rollout: str
    generated_at: str
    waves: list[list[str]]
    environments: list[EnvPage]
    max_parallel: int = 4
    on_failure: str = "stop"


# ----------------------------------------------------------------------------------- collecting


def collect(files: list[Path], *, root: Path, limit: int = 10, kubeconfig: Path | None = None,
            context: str | None = None) -> Page:
    """Load the blueprints (a rollout file, files or folders; bad input raises ``BlueprintError``)
    and gather each environment's part of the page from the working folder ``root``."""
    from .blueprint.rollout import expand
    from .render.kubernetes.placement import CHECKS
    from .rollout.graph import waves

    rollout = expand(list(files), checks=CHECKS)
    if kubeconfig is not None and len(rollout.environments) != 1:
        from .errors import UsageError

        raise UsageError("infra report: --kubeconfig names one cluster: give one environment with it")
    models = {env.loaded.model.name: env.loaded.model for env in rollout.environments}
    envs = [_environment(env, root, limit, kubeconfig, context, models) for env in rollout.environments]
    return Page(title=_title(rollout), rollout=rollout.name, generated_at=time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                           time.gmtime()),
                waves=waves(rollout), environments=envs, max_parallel=rollout.max_parallel,
                on_failure=rollout.on_failure)


def _title(rollout: Rollout) -> str:
    if rollout.path is not None:
        return f"rollout {rollout.name}"
    names = [e.name for e in rollout.environments]
    return ", ".join(names) if len(names) <= 3 else f"{len(names)} environments"


def _environment(env: RolloutEnv, root: Path, limit: int, kubeconfig: Path | None, context: str | None,
                 models: dict[str, Any] | None = None) -> EnvPage:
    from . import cost
    from .errors import BlueprintError

    loaded = env.loaded
    bp = loaded.model
    try:  # only so that redact() can scrub their values, should a record hold one; never shown
        from .secrets import resolve

        resolve(loaded)
    except BlueprintError:
        pass
    pools, teams, guarantees = _capacity(bp)
    nodes, placement, placement_note = _placement(bp)
    runs, total, problems, warnings, matched, last_plan = _runs(bp, root, limit)
    return EnvPage(
        name=bp.name, provider=bp.provider, file=str(env.path), region=getattr(bp, "region", None),
        after=sorted(env.after), cost=cost.estimate(bp), pools=pools, teams=teams, guarantees=guarantees,
        nodes=nodes, placement=placement, placement_note=placement_note, runs=runs, total_runs=total,
        chain_problems=problems, chain_warnings=warnings, heads_matched=matched, last_plan=last_plan,
        queues=_queues(loaded, root, kubeconfig, context), burst=_burst(bp, models or {}),
    )


def _burst(bp, models: dict[str, Any]) -> list[dict[str, Any]]:
    """Local and burst capacity per team, when a team of ``bp`` bursts to environments of this page."""
    if not any(team.burst is not None for team in bp.teams):
        return []
    from .blueprint.hybrid import capacity_rows

    return capacity_rows(bp, models)


def _capacity(bp) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, dict[str, int]]]:
    from .blueprint import capacity

    caps = capacity.capacities(bp)
    pools = []
    for pool in bp.node_pools:
        c = caps[pool.name]
        pools.append({"pool": pool.name, "purpose": capacity.purpose(pool), "nodes": c.nodes,
                      "gpu": f"{pool.gpu.type} x {c.gpus_per_node}" if pool.gpu else "",
                      "gpus": c.gpus, "vcpus": c.vcpus, "memory_gib": c.memory_gib,
                      "units_per_gpu": c.units_per_gpu})
    teams = []
    for team in bp.teams:
        teams.append({"team": team.name, "gpu_quota": team.gpu_quota,
                      "serving": capacity.serving_gpus(bp, team),
                      "training": capacity.training_quota(bp, team),
                      "borrowing_limit": team.borrowing_limit, "lending_limit": team.lending_limit,
                      "pools": ", ".join(team.pools) if team.pools is not None else "all training pools"})
    return pools, teams, capacity.guarantees(bp)


def _placement(bp) -> tuple[list[dict[str, Any]], list[Placement], str | None]:
    """The kinds of node, and per pod the nodes it may land on (the placement proof's predicates)."""
    from .blueprint.nodes import node_shapes
    from .errors import InfraError
    from .render.kubernetes import placement as proof

    shapes = node_shapes(bp)
    nodes = [{"node": n.name, "pool": n.pool or "", "role": n.role, "count": n.count,
              "instance_type": n.instance_type or "", "cpu": f"{n.cpu_millis / 1000:g}",
              "memory_gib": f"{n.memory_mib / 1024:.0f}", "gpus": n.gpus,
              "taints": ", ".join(f"{t['key']}{'=' + t['value'] if t.get('value') else ''}:{t['effect']}"
                                  for t in n.taints)} for n in shapes]
    if not getattr(bp, "has_kubernetes", True):
        return nodes, [], "no Kubernetes on this site: there are no pods to place"
    try:
        from .render.kubernetes import render_objects

        objs = render_objects(bp)
        pods = proof.kueue_pods(bp) + proof.rendered_pods(bp, objs) + proof.job_pods(bp, objs, shapes)
    except InfraError as exc:
        return nodes, [], f"the render refuses this blueprint, so no pod was placed: {exc.message}"
    rows = []
    for pod in pods:
        fits = [n for n in shapes if n.count and proof.why_not(pod.spec, n) is None]
        rows.append(Placement(pod.what, [_node_name(n) for n in fits],
                              [f.message for f in proof.check(pod, shapes)]))
    return nodes, rows, None


def _node_name(node) -> str:
    return f"pool {node.pool}" if node.pool and node.pool == node.name else f"host {node.name}"


def _runs(bp, root: Path, limit: int):
    """The last ``limit`` run records, the chain's problems and warnings (local heads only), the
    heads the chain matched, and the last record that carries a plan summary."""
    from . import records, records_audit, records_heads
    from .workspace import Workspace

    ws = Workspace(root=root, name=bp.name)
    heads = [h for h in records_heads.heads_for(root, bp.name, bp) if getattr(h, "local", False)]
    report = records_audit.audit(ws.records_dir, bp.name, heads, records.hmac_key())
    warnings = list(report.warnings)
    if bp.state.backend == "s3" and bp.state.bucket:
        warnings.append("the records kept beside the S3 state were not read: this page shows the local copy "
                        "(`infra history FILE` or any plan/up updates it)")
    entries = report.entries
    runs = [e.data if e.ok else {"seq": e.seq, "file": e.path.name, "corrupt": e.problem}
            for e in entries[-limit:]]
    last_plan = next((e.data for e in reversed(entries) if e.ok and isinstance(e.data.get("plan"), dict)), None)
    return runs, len(entries), list(report.problems), warnings, list(report.heads_matched), last_plan


def _queues(loaded, root: Path, kubeconfig: Path | None, context: str | None) -> Queues:
    """Jobs of the cluster, where one answers within ``PROBE_WITHIN`` seconds; else a note why not.
    Without ``kubeconfig``: the one the Terraform outputs ``infra up`` saved here make, written to a
    temporary folder (0700) that is removed after (the report writes nothing in the working folder)."""
    import tempfile

    from .errors import InfraError
    from .providers.registry import get
    from .workspace import Workspace, read_json, write_private

    bp = loaded.model
    if kubeconfig is not None:
        return _reach(bp, Path(kubeconfig), context)
    provider = get(bp.provider)
    outputs = read_json(Workspace(root=root, name=bp.name).outputs_file) if provider.terraform_module else {}
    if not outputs:
        return Queues(note=f"no cluster was reachable: no kubeconfig for '{bp.name}' here (pass --kubeconfig, "
                           "or make the page where `infra up` ran)")
    try:
        import yaml

        data = provider.kubeconfig(bp, outputs)
    except (InfraError, KeyError, TypeError, ValueError) as exc:
        why = exc.message if isinstance(exc, InfraError) else f"the saved outputs lack {exc}"
        return Queues(note=f"no cluster was reachable: no kubeconfig from the saved outputs: {why}")
    with tempfile.TemporaryDirectory(prefix="infra-report-") as tmp:
        path = write_private(Path(tmp) / "kubeconfig", yaml.safe_dump(data, sort_keys=True))
        return _reach(bp, path, context or data.get("current-context"))


def _reach(bp, kubeconfig: Path, context: str | None) -> Queues:
    from .errors import InfraError
    from .kube.reach import probe, server_of

    server = server_of(kubeconfig, context)
    if server is None:
        return Queues(note=f"no cluster was reachable: the kubeconfig names no server (context {context or 'current'})")
    why = probe(server, within=PROBE_WITHIN)
    if why is not None:
        return Queues(note=f"no cluster was reachable: {why}", server=server)
    try:
        return Queues(server=server, rows=_jobs(bp, kubeconfig, context))
    except InfraError as exc:
        return Queues(note=f"the cluster at {server} answered, but its jobs could not be read: {exc.message}",
                      server=server)


def _jobs(bp, kubeconfig: Path, context: str | None) -> list[dict[str, Any]]:
    from .kube import jobs
    from .kube.client import Client

    quotas = {t.effective_namespace: (t.gpu_quota, t.borrowing_limit) for t in bp.teams}
    client = Client.from_kubeconfig(kubeconfig, context)
    try:
        rows = jobs.list_jobs(client, None)
        for row in rows:
            if row["state"] == "Queued":
                info = jobs.status(client, row["namespace"], row["name"], quotas.get(row["namespace"]))
                row["why"] = info["explanation"]
    finally:
        client.close()
    return sorted(rows, key=lambda r: (r.get("team") or "", r["state"] != "Queued", r.get("name") or ""))


# ------------------------------------------------------------------------------------- rendering


def e(value: Any) -> str:
    """Escape anything for HTML text or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def _anchor(name: str) -> str:
    return "env-" + "".join(c if c.isalnum() or c == "-" else "-" for c in name)


def _table(caption: str, headers: list[str], rows: list[list[Any]], numeric: tuple[int, ...] = (),
           row_class: list[str] | None = None, footer: list[Any] | None = None) -> str:
    """A table with a caption, column headers and each row's first cell as its row header;
    cells are escaped here unless they are ``Html``. No rows: a line saying so."""
    if not rows:
        return f'<p class="note">{e(caption)}: none.</p>'
    out = ['<div class="scroll" role="region" tabindex="0" aria-label="' + e(caption) + '">',
           f"<table><caption>{e(caption)}</caption><thead><tr>"]
    out += [f'<th scope="col"{_num(i, numeric)}>{e(h)}</th>' for i, h in enumerate(headers)]
    out.append("</tr></thead><tbody>")
    for n, row in enumerate(rows):
        cls = f' class="{e(row_class[n])}"' if row_class and row_class[n] else ""
        cells = [(f'<th scope="row">{_cell(c)}</th>' if i == 0 else f"<td{_num(i, numeric)}>{_cell(c)}</td>")
                 for i, c in enumerate(row)]
        out.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    out.append("</tbody>")
    if footer is not None:
        out.append("<tfoot><tr>" + "".join(
            (f'<th scope="row">{_cell(c)}</th>' if i == 0 else f"<td{_num(i, numeric)}>{_cell(c)}</td>")
            for i, c in enumerate(footer)) + "</tr></tfoot>")
    out.append("</table></div>")
    return "\n".join(out)


class Html(str):
    """Markup built here from escaped parts: a table cell takes it as it is."""


def _cell(value: Any) -> str:
    return value if isinstance(value, Html) else e(value)


def _num(i: int, numeric: tuple[int, ...]) -> str:
    return ' class="num"' if i in numeric else ""


def _badge(outcome: str) -> Html:
    kind = "ok" if outcome in _OK_OUTCOMES else "bad" if outcome in _BAD_OUTCOMES else "warn"
    mark = {"ok": "✔", "bad": "✖", "warn": "●"}[kind]
    return Html(f'<span class="badge {kind}"><span aria-hidden="true">{mark}</span> {e(outcome)}</span>')


def _chain_state(env: EnvPage) -> Html:
    if env.chain_problems:
        return Html('<span class="badge bad"><span aria-hidden="true">✖</span> chain broken</span>')
    if not env.total_runs:
        return Html('<span class="badge none">no runs recorded</span>')
    return Html('<span class="badge ok"><span aria-hidden="true">✔</span> chain intact</span>')


def _plan_counts(plan: dict[str, Any] | None) -> str:
    if not plan:
        return ""
    if not plan.get("has_changes", True) and not any(plan.get(k) for k in ("add", "change", "destroy")):
        return "no changes"
    return f"+{plan.get('add', 0)} ~{plan.get('change', 0)} -{plan.get('destroy', 0)}"


def _money_span(est: Estimate, which: str, pool=None) -> str:
    from .cost import money

    if pool is None:
        low, high = est.total("min", which), est.total("max", which)
    else:
        low, high = pool.at(pool.min_nodes, which), pool.at(pool.max_nodes, which)
    return f"{money(low, est.currency, cents=False)} – {money(high, est.currency, cents=False)}"


def render(page: Page) -> str:
    """The page as one HTML document (UTF-8), redacted."""
    from .records import hmac_key
    from .secrets import redact

    parts = [_head(page), "<body>", '<a class="skip" href="#main">Skip to the environments</a>',
             "<header>", f"<h1>infra report: {e(page.title)}</h1>",
             f'<p class="meta">Generated {e(page.generated_at)} by infra {e(__version__)}. A static page: '
             "no script, nothing loaded from the network.</p>", "</header>",
             '<main id="main">', _overview(page), _graph(page)]
    parts += [_env_section(env) for env in page.environments]
    parts += ["</main>", "</body>", "</html>"]
    key = hmac_key()
    return redact("\n".join(parts) + "\n", [key.decode()] if key is not None else [])


_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: #1a1a1a; background: #ffffff; }
header, main { max-width: 72rem; margin: 0 auto; padding: 0 1rem; }
header { padding-top: 1rem; border-bottom: 2px solid #2b4a8b; }
h1 { font-size: 1.6rem; margin: .4rem 0; overflow-wrap: anywhere; }
h2 { font-size: 1.35rem; margin: 2rem 0 .5rem; padding-top: .5rem; border-top: 1px solid #c8c8c8;
  overflow-wrap: anywhere; }
h3 { font-size: 1.1rem; margin: 1.4rem 0 .4rem; }
.meta, .note { color: #3d3d3d; }
.note { margin: .3rem 0; }
a { color: #1f4aa8; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: 1rem; background: #fff; padding: .3rem; }
.scroll { overflow-x: auto; margin: .5rem 0 1rem; }
.scroll:focus { outline: 2px solid #1f4aa8; }
table { border-collapse: collapse; min-width: 50%; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
th, td { border: 1px solid #b5b5b5; padding: .3rem .55rem; text-align: left; vertical-align: top; }
thead th { background: #e8edf7; }
tbody th { font-weight: 600; }
tfoot th, tfoot td { background: #f2f2f2; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.failed th, tr.failed td { background: #fdecec; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: .6rem; border: 1px solid; font-weight: 600;
  white-space: nowrap; }
.badge.ok { color: #0b5323; background: #e3f3e8; border-color: #0b5323; }
.badge.bad { color: #8f0000; background: #fde4e4; border-color: #8f0000; }
.badge.warn { color: #5c3d00; background: #fff3d6; border-color: #5c3d00; }
.badge.none { color: #3d3d3d; background: #f2f2f2; border-color: #6b6b6b; }
.problems { color: #8f0000; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .92em; overflow-wrap: anywhere; }
svg text { font: 13px system-ui, "DejaVu Sans", sans-serif; fill: #1a1a1a; }
@media (max-width: 40rem) {
  body { font-size: 15px; }
  th, td { padding: .25rem .35rem; }
  h1 { font-size: 1.3rem; }
}
"""


def _head(page: Page) -> str:
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # nothing to fetch, nothing to run: the page is complete as it is
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "img-src data:\">",
        '<meta name="referrer" content="no-referrer">',
        f"<title>infra report: {e(page.title)}</title>", f"<style>{_CSS}</style>", "</head>",
    ])


def _overview(page: Page) -> str:
    from .cost import money

    rows, classes = [], []
    for env in page.environments:
        last = env.last_run
        est = env.cost
        cost = est.note or (f"{money(est.total('min'), est.currency, cents=False)} – "
                            f"{money(est.total('max'), est.currency, cents=False)}")
        link = Html(f'<a href="#{_anchor(env.name)}">{e(env.name)}</a>')
        outcome = _badge(last["outcome"]) if last else Html('<span class="badge none">none</span>')
        rows.append([link, outcome, _chain_state(env), cost, _plan_counts((env.last_plan or {}).get("plan")),
                     f"{last['command']} {last['finished_at']}" if last else "", env.provider, env.region or ""])
        classes.append("failed" if last and last["outcome"] in _BAD_OUTCOMES else "")
    return "\n".join(['<section aria-labelledby="overview">', '<h2 id="overview">Environments</h2>',
                      _table("Environments at a glance", ["environment", "last run", "audit chain",
                                                          "est. monthly (as configured, min – max)", "last plan",
                                                          "last run was (UTC)", "provider", "region"],
                             rows, row_class=classes),
                      "</section>"])


def _graph(page: Page) -> str:
    """The rollout's order: an SVG (waves left to right, an arrow per ``after``) and the same as a table."""
    by_name = {env.name: env for env in page.environments}
    box_w, box_h, gap_x, gap_y, pad = 190, 44, 70, 18, 10
    pos: dict[str, tuple[int, int]] = {}
    for i, wave in enumerate(page.waves):
        for j, name in enumerate(wave):
            pos[name] = (pad + i * (box_w + gap_x), pad + j * (box_h + gap_y))
    width = pad * 2 + len(page.waves) * box_w + max(len(page.waves) - 1, 0) * gap_x
    height = pad * 2 + max((len(w) for w in page.waves), default=1) * (box_h + gap_y) - gap_y
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="graph-title" '
           f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
           f'<title id="graph-title">Rollout order: {e(", then ".join(" and ".join(w) for w in page.waves))}'
           "</title>",
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#2b4a8b"/></marker></defs>']
    for env in page.environments:
        for dep in env.after:
            if dep in pos and env.name in pos:
                (x1, y1), (x2, y2) = pos[dep], pos[env.name]
                svg.append(f'<line x1="{x1 + box_w}" y1="{y1 + box_h // 2}" x2="{x2}" y2="{y2 + box_h // 2}" '
                           'stroke="#2b4a8b" stroke-width="1.5" marker-end="url(#arrow)"/>')
    for name, (x, y) in pos.items():
        env = by_name[name]
        last = env.last_run
        bad = last is not None and last["outcome"] in _BAD_OUTCOMES
        fill, stroke = ("#fde4e4", "#8f0000") if bad else ("#e8edf7", "#2b4a8b")
        svg.append(f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="6" fill="{fill}" '
                   f'stroke="{stroke}"/>')
        label = name if len(name) <= 24 else name[:23] + "…"
        svg.append(f'<text x="{x + 8}" y="{y + 18}">{e(label)}</text>')
        svg.append(f'<text x="{x + 8}" y="{y + 35}">{e(env.provider)}'
                   f'{" · last run " + e(last["outcome"]) if last else ""}</text>')
    svg.append("</svg>")
    rows = []
    for i, wave in enumerate(page.waves, 1):
        for name in wave:
            env = by_name[name]
            rows.append([name, i, env.provider, ", ".join(env.after) or "—"])
    return "\n".join([
        '<section aria-labelledby="graph">', '<h2 id="graph">Rollout order</h2>',
        f'<p class="note">Environments in one wave may run together (at most {page.max_parallel} at a time; '
        f"on a failure: {e(page.on_failure)}); each wave starts after the one before. "
        "<code>infra down</code> goes in the reverse order.</p>",
        '<div class="scroll" role="region" tabindex="0" aria-label="Rollout graph">', *svg, "</div>",
        _table("Rollout order by wave", ["environment", "wave", "provider", "after"], rows, numeric=(1,)),
        "</section>"])


def _env_section(env: EnvPage) -> str:
    aid = _anchor(env.name)
    parts = [f'<section aria-labelledby="{aid}">',
             f'<h2 id="{aid}">Environment {e(env.name)} <span class="meta">({e(env.provider)}'
             f'{", " + e(env.region) if env.region else ""})</span></h2>',
             f'<p class="note">Blueprint: <code>{e(env.file)}</code></p>',
             _plan_part(env), _cost_part(env), _capacity_part(env), _placement_part(env), _runs_part(env),
             _queues_part(env), "</section>"]
    return "\n".join(parts)


def _plan_part(env: EnvPage) -> str:
    out = ["<h3>Plan summary</h3>"]
    rec = env.last_plan
    if rec is None:
        out.append('<p class="note">No run of this environment recorded a plan summary here yet (<code>infra '
                   "plan</code> and <code>infra up</code> of a cloud environment record one; this page shows the "
                   "last).</p>")
        return "\n".join(out)
    plan = rec["plan"]
    where = " (sandbox)" if rec.get("sandbox") else ""
    out.append(f'<p class="note">From run <code>{e(rec["id"])}</code>: <code>infra {e(rec["command"])}</code>'
               f"{where}, finished {e(rec['finished_at'])}, outcome {_badge(rec['outcome'])}. "
               f"Changes: <strong>{e(_plan_counts(plan))}</strong>.</p>")
    by_type = plan.get("by_type") or {}
    if by_type:
        rows = [[rtype, *(counts.get(k, 0) or "" for k in ("add", "change", "destroy"))]
                for rtype, counts in sorted(by_type.items())]
        out.append(_table(f"Planned changes of {env.name} by resource type", ["resource type", "add", "change",
                                                                                "destroy"], rows,
                          numeric=(1, 2, 3), footer=["total", plan.get("add", 0), plan.get("change", 0),
                                                     plan.get("destroy", 0)]))
    return "\n".join(out)


def _cost_part(env: EnvPage) -> str:
    from .cost import DISCLAIMER, HOURS_PER_MONTH, money

    est = env.cost
    out = ["<h3>Estimated monthly cost</h3>"]
    if est.note:
        out.append(f'<p class="note">{e(est.note)}</p>')
        return "\n".join(out)
    rows = []
    for p in est.pools:
        kind = "" if p.capacity == "on_demand" else f" {p.capacity.replace('_', ' ')}"
        rows.append([p.pool, ", ".join(p.instance_types), f"{p.min_nodes}–{p.max_nodes}{kind}",
                     _money_span(est, "on_demand", p), _money_span(est, "spot", p),
                     _money_span(est, "configured", p)])
    out.append(_table(f"Estimated monthly cost of {env.name} per pool ({est.currency}, {HOURS_PER_MONTH} h/month, "
                      f"list prices for {est.price_region or 'no region'}), at min – max nodes",
                      ["pool", "instance type", "nodes", "on-demand", "spot", "as configured"], rows,
                      numeric=(3, 4, 5), footer=["total", "", "", _money_span(est, "on_demand"),
                                                 _money_span(est, "spot"), _money_span(est, "configured")]))
    out.append(f'<p class="note">As configured (spot pools at spot prices): '
               f"<strong>{e(money(est.total('min'), est.currency, cents=False))}</strong> per month at min, "
               f"<strong>{e(money(est.total('max'), est.currency, cents=False))}</strong> at max.</p>")
    if est.unpriced:
        out.append(f'<p class="note">Not counted: {e(", ".join(est.unpriced))} (no price for the machine type, '
                   "or a capacity block).</p>")
    if est.region and est.price_region and est.region != est.price_region:
        out.append(f'<p class="note">The prices are for {e(est.price_region)}; {e(est.region)} may cost more or '
                   "less.</p>")
    out.append(f'<p class="note">Note: {e(DISCLAIMER)}.</p>')
    for source, as_of in est.sources:
        out.append(f'<p class="note">Prices: {e(source)} (as of {e(as_of)}).</p>')
    return "\n".join(out)


def _capacity_part(env: EnvPage) -> str:
    out = ["<h3>Capacity</h3>"]
    rows = [[p["pool"], p["purpose"], p["nodes"], p["gpu"], p["gpus"], p["vcpus"], p["memory_gib"]]
            for p in env.pools]
    out.append(_table(f"What each pool of {env.name} holds (cloud: at max nodes)",
                      ["pool", "purpose", "nodes", "GPU per node", "GPUs", "vCPUs", "memory (GiB)"], rows,
                      numeric=(2, 4, 5, 6)))
    if env.teams:
        rows = [[t["team"], t["gpu_quota"], t["serving"], t["training"], t["borrowing_limit"] or 0,
                 "—" if t["lending_limit"] is None else t["lending_limit"], t["pools"]] for t in env.teams]
        out.append(_table(f"Team budgets of {env.name} (GPUs)", ["team", "GPU quota", "model servers",
                                                                 "training (Kueue nominal)", "may borrow",
                                                                 "may lend", "training pools"], rows,
                          numeric=(1, 2, 3, 4, 5)))
    pools = list(env.guarantees)
    if pools and env.teams:
        rows = [[t["team"], *(env.guarantees[p].get(t["team"], 0) for p in pools)] for t in env.teams]
        holds = {p["pool"]: p["gpus"] for p in env.pools}
        out.append(_table(f"Guaranteed GPUs per training pool of {env.name}", ["team", *pools], rows,
                          numeric=tuple(range(1, len(pools) + 1)),
                          footer=["pool holds", *(holds.get(p, 0) for p in pools)]))
    if env.burst:
        workers = sorted({w for row in env.burst for w in row["workers"]})
        rows = [[r["team"], r["local_gpus"], r["local_borrowing"], r["burst_gpus"],
                 *("—" if r["workers"].get(w) is None else r["workers"][w] for w in workers)] for r in env.burst]
        out.append(_table(f"Local and burst GPUs per team of {env.name} (docs/hybrid.md)",
                          ["team", "local (Kueue nominal)", "may borrow", "burst cap",
                           *(f"guaranteed on {w}" for w in workers)], rows,
                          numeric=tuple(range(1, 4 + len(workers)))))
    return "\n".join(out)


def _placement_part(env: EnvPage) -> str:
    out = ["<h3>Placement</h3>"]
    rows = [[n["node"], n["pool"], n["role"], n["count"], n["instance_type"], n["cpu"], n["memory_gib"], n["gpus"],
             n["taints"] or "—"] for n in env.nodes]
    out.append(_table(f"Kinds of node of {env.name} (allocatable per node)",
                      ["node", "pool", "role", "count", "instance type", "CPU", "memory (GiB)", "GPUs", "taints"],
                      rows, numeric=(3, 5, 6, 7)))
    if env.placement_note:
        refused = env.placement_note.startswith("the render refuses")
        out.append(f'<p class="note{" problems" if refused else ""}">{e(env.placement_note)}</p>')
        return "\n".join(out)
    rows, classes = [], []
    for p in env.placement:
        where = ", ".join(p.lands_on) if p.lands_on else "fits no node"
        rows.append([p.pod, where, "; ".join(p.problems) if p.problems else "ok"])
        classes.append("failed" if p.problems else "")
    bad = sum(1 for p in env.placement if p.problems)
    out.append(f'<p class="note">The placement proof: every pod infra renders, checked against the nodes above '
               "with the scheduler's predicates (node affinity, taints, requests). "
               f"{len(env.placement)} pods, {bad} problem{'s' if bad != 1 else ''}.</p>")
    out.append(_table(f"Where each pod of {env.name} may land", ["pod", "may land on", "proof"], rows,
                      row_class=classes))
    return "\n".join(out)


def _runs_part(env: EnvPage) -> str:
    out = ["<h3>Last runs and audit chain</h3>"]
    if env.chain_problems:
        out.append('<p class="problems"><strong>Audit chain broken</strong>: the records are not what the runs '
                   "wrote (<code>infra history --verify</code> exits 8).</p>")
        out.append('<ul class="problems">' + "".join(f"<li>{e(p)}</li>" for p in env.chain_problems) + "</ul>")
    elif env.total_runs:
        heads = f", matches {e(', '.join(env.heads_matched))}" if env.heads_matched else ", no head yet"
        out.append(f'<p class="note">Audit chain: {_chain_state(env)} ({env.total_runs} record'
                   f"{'s' if env.total_runs != 1 else ''}{heads}).</p>")
    for w in env.chain_warnings:
        out.append(f'<p class="note">Warning: {e(w)}</p>')
    if not env.runs:
        out.append('<p class="note">No runs recorded for this environment in this folder.</p>')
        return "\n".join(out)
    rows, classes = [], []
    for r in reversed(env.runs):  # newest first
        if "corrupt" in r:
            rows.append([r["seq"] if r["seq"] is not None else "?", _badge("corrupt"), "", "", r["file"], "", "",
                         Html(f'<span class="problems">{e(r["corrupt"])}</span>')])
            classes.append("failed")
            continue
        extra = f" (rollback of {r['rollback_of']})" if r.get("rollback_of") else ""
        error = Html(f'<span class="problems">{e(r["error"])}</span>') if r.get("error") else ""
        rows.append([r["seq"], _badge(r["outcome"]), f"{r['command']}{' (sandbox)' if r['sandbox'] else ''}{extra}",
                     r["finished_at"], r["id"], r["user"], _plan_counts(r.get("plan")), error])
        classes.append("failed" if r["outcome"] in _BAD_OUTCOMES else "")
    shown = f"the last {len(env.runs)} of {env.total_runs}" if env.total_runs > len(env.runs) else "all"
    out.append(_table(f"Runs of {env.name}, newest first ({shown})",
                      ["seq", "outcome", "command", "finished (UTC)", "id", "user", "plan", "error"], rows,
                      numeric=(0,), row_class=classes))
    return "\n".join(out)


def _queues_part(env: EnvPage) -> str:
    out = ["<h3>Queues</h3>"]
    q = env.queues
    if q.note:
        out.append(f'<p class="note">{e(q.note)}</p>')
        return "\n".join(out)
    pending = sum(1 for r in q.rows if r["state"] == "Queued")
    admitted = sum(1 for r in q.rows if r["state"] in ("Starting", "Running"))
    out.append(f'<p class="note">Cluster {e(q.server)}: {len(q.rows)} job{"s" if len(q.rows) != 1 else ""}, '
               f"{pending} pending (queued in Kueue), {admitted} admitted and running.</p>")
    if q.rows:
        rows = [[r["name"], r.get("namespace"), r.get("team") or "", r.get("queue") or "", r["state"], r["gpus"],
                 r.get("created") or "", r.get("why", "")] for r in q.rows]
        out.append(_table(f"Jobs on {env.name}'s cluster, pending first per team",
                          ["job", "namespace", "team", "queue", "state", "GPUs", "created", "why pending"], rows,
                          numeric=(5,)))
    return "\n".join(out)
