"""``infra report FILE...|ROLLOUT --html OUT``: what the page holds, read back with an HTML parser.

The page is checked as a document (every table has a caption and scoped headers, no script, no
external resource, everything from a blueprint or a record escaped, secret values absent) and
for its facts (the cost totals of ``cost.estimate``, the placement proof's pods, the records'
outcomes and the audit chain's state, the jobs of a cluster and why they wait). What a browser
shows is tests/integration/test_report_browser.py's part.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

from orchestrator import records
from orchestrator.blueprint.loader import load
from orchestrator.cost import estimate, money
from tests.blueprints import UNREACHABLE_LAB
from tests.conftest import EXAMPLES
from tests.unit.kube_fixtures import THREE_TEAMS, fake, kubeconfig, team_namespaces  # noqa: F401

INFRA = str(Path(sys.executable).with_name("infra"))
LAB = UNREACHABLE_LAB
ROLLOUT = """rollout: 1
name: labs
environments:
  - path: lab-a.yaml
  - path: lab-b.yaml
    after: [lab-a]
"""


def _infra(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("INFRA_") or k == "INFRA_TODAY"}
    return subprocess.run([INFRA, *args], cwd=cwd, env={**base, **env}, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


class Doc(HTMLParser):
    """The page as the parser sees it: tags with attributes, tables, text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.tables: list[dict] = []
        self.text: list[str] = []
        self._stack: list[dict] = []
        self._cell: list[str] | None = None
        self._in: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        self._in.append(tag)
        if tag == "table":
            self._stack.append({"caption": "", "headers": [], "rows": [], "row": None, "row_class": []})
        elif self._stack and tag == "tr":
            self._stack[-1]["row"] = []
            self._stack[-1]["row_class"].append(a.get("class") or "")
        elif self._stack and tag in ("th", "td", "caption"):
            self._cell = []
            if tag == "th":
                self._stack[-1].setdefault("scopes", []).append(a.get("scope"))

    def handle_endtag(self, tag):
        if self._in and self._in[-1] == tag:
            self._in.pop()
        if not self._stack:
            return
        t = self._stack[-1]
        if tag == "caption":
            t["caption"] = "".join(self._cell or []).strip()
            self._cell = None
        elif tag in ("th", "td") and self._cell is not None:
            t["row"].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr":
            t["rows"].append(t["row"])
        elif tag == "table":
            self.tables.append(self._stack.pop())

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if not (self._in and self._in[-1] in ("style", "title")):
            self.text.append(data)

    def table(self, starts: str) -> dict:
        found = [t for t in self.tables if t["caption"].startswith(starts)]
        assert len(found) == 1, [t["caption"] for t in self.tables]
        return found[0]

    def plain(self) -> str:
        return " ".join(" ".join(self.text).split())


def _project(tmp_path: Path) -> Path:
    shutil.copy(EXAMPLES / "sandbox.yaml", tmp_path / "env.yaml")
    return tmp_path


def _record(root: Path, env: str, command: str, outcome: str, error: str | None = None,
            plan: dict | None = None, sandbox: bool = False) -> Path:
    """A run record as the runs write them (``records.write``: the real chain and head)."""
    from orchestrator.records_heads import RepoHead, head_dir

    rec = records.RunRecord(env=env, command=command, blueprint_path=str(root / "env.yaml"),
                            blueprint_sha256="ab" * 32, sandbox=sandbox)
    rec.stage("render", "ok", 0.1)
    rec.stage("plan", "failed" if outcome == "failed" else "ok", 1.0)
    rec.outcome, rec.error, rec.plan = outcome, error, plan
    return records.write(root / ".infra" / "records" / env, rec, [RepoHead(head_dir(root) / f"{env}.json")])


PLAN = {"add": 3, "change": 1, "destroy": 0, "has_changes": True,
        "by_type": {"aws_vpc": {"add": 1}, "aws_subnet": {"add": 2}, "aws_eks_cluster": {"change": 1}}}


def _report(root: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], Doc | None]:
    out = root / "report.html"
    result = _infra(root, "report", *args, "--html", str(out), **env)
    return result, (Doc(out.read_text(encoding="utf-8")) if result.returncode == 0 else None)


def test_the_sandbox_example_page_has_every_part(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _record(root, "demo", "plan", "success", plan=PLAN, sandbox=True)
    _record(root, "demo", "up", "failed", error="terraform apply failed: boom")
    result, doc = _report(root, "env.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {root / 'report.html'} (1 environment)"
    assert doc is not None
    page = doc.plain()
    assert ("html", {"lang": "en"}) in doc.tags
    # the overview: the environment, its last run (the failed up) marked, the chain intact, the cost
    over = doc.table("Environments at a glance")
    assert over["rows"][1][:3] == ["demo", "✖ failed", "✔ chain intact"]
    assert over["row_class"][1] == "failed"
    est = estimate(load(root / "env.yaml").model)
    span = f"{money(est.total('min'), cents=False)} – {money(est.total('max'), cents=False)}"
    assert over["rows"][1][3] == span == "$70 – $99,431"
    assert over["rows"][1][4] == "+3 ~1 -0"  # the last run that planned: the sandbox plan
    # plan summary by resource type, with totals
    plan = doc.table("Planned changes of demo by resource type")
    assert plan["rows"][1:] == [["aws_eks_cluster", "", "1", ""], ["aws_subnet", "2", "", ""],
                                ["aws_vpc", "1", "", ""], ["total", "3", "1", "0"]]
    assert "From run" in page and "infra plan (sandbox)" in page
    # cost per pool: each pool's row from the estimate, and the total
    cost = doc.table("Estimated monthly cost of demo per pool")
    assert [r[0] for r in cost["rows"][1:]] == [p.pool for p in est.pools] + ["total"]
    a100 = next(p for p in est.pools if p.pool == "a100")
    assert cost["rows"][2][3] == f"{money(a100.at(0, 'on_demand'), cents=False)} – " \
                                 f"{money(a100.at(4, 'on_demand'), cents=False)}"
    assert cost["rows"][-1][5] == span
    # capacity and guarantees (examples/sandbox.yaml: a100 holds 4 x 8 GPUs; vision 8, nlp 4)
    pools = doc.table("What each pool of demo holds")
    assert pools["rows"][2][:5] == ["a100", "training", "4", "a100 x 8", "32"]
    assert pools["rows"][3][:2] == ["l4", "inference"]
    guaranteed = doc.table("Guaranteed GPUs per training pool of demo")
    assert guaranteed["rows"][1:] == [["vision", "8"], ["nlp", "4"], ["pool holds", "32"]]
    # placement: the device plugin lands on both GPU pools, a team's GPU job only on a100
    where = {r[0]: r[1:] for r in doc.table("Where each pod of demo may land")["rows"][1:]}
    assert where["DaemonSet kube-system/nvidia-device-plugin"] == ["pool a100, pool l4", "ok"]
    assert where["a 1-GPU Job of team vision admitted to flavor a100"] == ["pool a100", "ok"]
    assert all(proof == "ok" for _, proof in where.values())
    nodes = doc.table("Kinds of node of demo")
    assert [r[0] for r in nodes["rows"][1:]] == ["system", "a100", "l4"]
    # runs, newest first, the failed one marked and its error shown
    runs = doc.table("Runs of demo, newest first")
    assert [r[:3] for r in runs["rows"][1:]] == [["2", "✖ failed", "up"], ["1", "✔ success", "plan (sandbox)"]]
    assert runs["row_class"][1:] == ["failed", ""]
    assert runs["rows"][1][-1] == "terraform apply failed: boom"
    assert "Audit chain: ✔ chain intact (2 records, matches repository head" in page
    # no cluster: one line
    assert "no cluster was reachable: no kubeconfig for 'demo' here" in page
    # the rollout graph: one wave
    assert doc.table("Rollout order by wave")["rows"][1:] == [["demo", "1", "aws", "—"]]
    assert any(tag == "svg" and a.get("role") == "img" for tag, a in doc.tags)


def test_the_page_is_static_accessible_and_private(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _record(root, "demo", "plan", "success", plan=PLAN)
    result, doc = _report(root, "env.yaml")
    assert result.returncode == 0, result.stderr
    assert doc is not None
    assert stat.S_IMODE((root / "report.html").stat().st_mode) == 0o600
    names = [tag for tag, _ in doc.tags]
    assert "script" not in names and "link" not in names and "iframe" not in names and "img" not in names
    for tag, attrs in doc.tags:  # nothing loaded from anywhere: no src, no external href, no inline handler
        assert "src" not in attrs, (tag, attrs)
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
        if tag == "a":
            assert (attrs.get("href") or "").startswith("#"), attrs
    csp = [a["content"] for tag, a in doc.tags if tag == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and csp[0].startswith("default-src 'none'")
    assert len(doc.tables) >= 8
    for t in doc.tables:  # every table: a caption, and every header cell scoped
        assert t["caption"], t
        assert t["scopes"] and all(s in ("col", "row") for s in t["scopes"]), t["caption"]
    levels = [int(tag[1]) for tag, _ in doc.tags if tag in ("h1", "h2", "h3", "h4")]
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(b - a <= 1 for a, b in zip(levels, levels[1:], strict=False)), levels  # no level skipped


def test_everything_from_records_and_paths_is_escaped_and_secrets_never_appear(tmp_path: Path) -> None:
    folder = tmp_path / 'a<b>&"c'
    folder.mkdir()
    text = (EXAMPLES / "sandbox.yaml").read_text() + "secrets:\n  registry_password: ${env:H25_REGISTRY_PASSWORD}\n"
    (folder / "env.yaml").write_text(text)
    secret = "hunter2-correct-horse-battery"
    hostile = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    _record(tmp_path, "demo", "up", "failed", error=f"{hostile} leaked {secret}")
    out = tmp_path / "report.html"
    key = "h25-records-hmac-key-value"
    result = _infra(tmp_path, "report", str(folder / "env.yaml"), "--html", str(out),
                    H25_REGISTRY_PASSWORD=secret, INFRA_RECORDS_HMAC_KEY=key)
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    assert "<script" not in page and "<img" not in page and 'onerror="' not in page  # text only, never markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a&lt;b&gt;&amp;&quot;c" in page  # the blueprint's path, escaped
    assert secret not in page and "[redacted]" in page
    assert key not in page
    doc = Doc(page)
    runs = doc.table("Runs of demo, newest first")
    assert runs["rows"][1][-1] == "<script>alert(1)</script><img src=x onerror=\"alert(2)\"> leaked [redacted]"
    # the record was written unsigned and the key is set now: the chain check says so
    assert "Audit chain broken" in doc.plain() and "has no hmac (written without INFRA_RECORDS_HMAC_KEY" in doc.plain()


def test_a_tampered_record_shows_a_broken_chain_but_the_page_is_written(tmp_path: Path) -> None:
    root = _project(tmp_path)
    first = _record(root, "demo", "plan", "success", plan=PLAN)
    _record(root, "demo", "up", "success")
    data = json.loads(first.read_text())
    data["outcome"] = "failed"
    first.write_text(json.dumps(data))
    result, doc = _report(root, "env.yaml")
    assert result.returncode == 0, result.stderr
    assert doc is not None
    page = doc.plain()
    assert "Audit chain broken" in page
    assert "record #1 (" in page and "modified after it was written" in page
    assert doc.table("Environments at a glance")["rows"][1][2] == "✖ chain broken"


def test_a_rollout_page_shows_the_order_and_each_environment(tmp_path: Path) -> None:
    for name in ("lab-a", "lab-b"):
        (tmp_path / f"{name}.yaml").write_text(LAB.format(name=name))
    (tmp_path / "rollout.yaml").write_text(ROLLOUT)
    plan = _infra(tmp_path, "plan", "rollout.yaml")
    assert plan.returncode == 0, plan.stderr
    result, doc = _report(tmp_path, "rollout.yaml", "--limit", "1")
    assert result.returncode == 0, result.stderr
    assert doc is not None
    assert doc.table("Rollout order by wave")["rows"][1:] == [["lab-a", "1", "baremetal", "—"],
                                                              ["lab-b", "2", "baremetal", "lab-a"]]
    title = '<title id="graph-title">Rollout order: lab-a, then lab-b</title>'  # the SVG's accessible name
    assert title in (tmp_path / "report.html").read_text()
    assert sum(1 for tag, _ in doc.tags if tag == "line") == 1  # one arrow: lab-a -> lab-b
    over = doc.table("Environments at a glance")
    assert [r[:2] for r in over["rows"][1:]] == [["lab-a", "✔ success"], ["lab-b", "✔ success"]]
    assert over["rows"][1][3] == "owned hardware: no estimate"
    assert "infra report: rollout labs" in doc.plain()
    where = doc.table("Where each pod of lab-a may land")
    assert ["Deployment kueue-system/kueue-controller-manager", "host node-1", "ok"] in where["rows"]


def test_a_bursting_team_shows_its_local_and_burst_capacity(tmp_path: Path) -> None:
    """issue 26: the capacity model shows local and burst capacity per team (docs/hybrid.md)."""
    from orchestrator.blueprint.capacity import training_quota

    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "hybrid"
    for name in ("onprem.yaml", "aws-burst.yaml", "rollout.yaml"):
        shutil.copy(fixtures / name, tmp_path / name)
    result, doc = _report(tmp_path, "rollout.yaml")
    assert result.returncode == 0, result.stderr
    assert doc is not None
    onprem, worker = load(tmp_path / "onprem.yaml").model, load(tmp_path / "aws-burst.yaml").model
    table = doc.table("Local and burst GPUs per team of onprem (docs/hybrid.md)")
    assert table["rows"][0] == ["team", "local (Kueue nominal)", "may borrow", "burst cap",
                                "guaranteed on aws-burst"]
    rows = {r[0]: r for r in table["rows"][1:]}
    for team in onprem.teams:
        there = next((t for t in worker.teams if t.name == team.name), None)
        expected = [team.name, str(training_quota(onprem, team)), str(team.borrowing_limit or 0),
                    str(team.burst.max_gpus if team.burst else 0),
                    str(training_quota(worker, there)) if team.burst and there else "—"]
        assert rows[team.name] == expected
    assert any(r[3] != "0" for r in rows.values())  # at least one team bursts in the fixture
    # the worker's own teams do not burst: no such table for it
    assert not any(t["caption"].startswith("Local and burst GPUs per team of aws-burst") for t in doc.tables)


def test_queues_of_a_reachable_cluster_with_why_pending(tmp_path: Path, fake, kubeconfig) -> None:  # noqa: F811
    for ns in ("vision", "nlp-team", "research"):
        fake.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    submit = _infra(tmp_path, "job", "submit", "--gpus", "2", "--team", "vision", "--image", "busybox", "--command",
                    "nvidia-smi", "--name", "smoke", "--kubeconfig", str(kubeconfig))
    assert submit.returncode == 0, submit.stderr
    _infra(tmp_path, "job", "submit", "--gpus", "1", "--team", "vision", "--image", "b", "--command", "c",
           "--name", "train", "--kubeconfig", str(kubeconfig))
    running = fake.get("batch/v1", "Job", "train", "vision")
    running["spec"]["suspend"] = False
    running["status"] = {"active": 1}
    fake.put(running)
    job = fake.get("batch/v1", "Job", "smoke", "vision")
    fake.put({"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "Workload",
              "metadata": {"name": "job-smoke-1a2b3", "namespace": "vision",
                           "labels": {"kueue.x-k8s.io/job-uid": job["metadata"]["uid"]}},
              "status": {"conditions": [{"type": "QuotaReserved", "status": "False", "reason": "Pending",
                                         "message": "couldn't assign flavors to pod set main: insufficient unused "
                                                    "quota for nvidia.com/gpu in flavor h100, 2 more needed"}]}})
    result, doc = _report(tmp_path, str(THREE_TEAMS), "--kubeconfig", str(kubeconfig))
    assert result.returncode == 0, result.stderr
    assert doc is not None
    jobs = doc.table("Jobs on gpu-lab's cluster")
    rows = {r[0]: r for r in jobs["rows"][1:]}
    assert rows["smoke"][1:6] == ["vision", "vision", "vision", "Queued", "2"]
    assert rows["smoke"][7].startswith("waiting for quota: it needs 2 more nvidia.com/gpu than is free in flavor h100")
    assert rows["train"][4] == "Running" and rows["train"][7] == ""
    assert "2 jobs, 1 pending (queued in Kueue), 1 admitted and running." in doc.plain()


def test_an_unreachable_cluster_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(json.dumps({"apiVersion": "v1", "kind": "Config", "current-context": "c",
                               "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:1"}}],
                               "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                               "users": [{"name": "u", "user": {"token": "t"}}]}))
    result, doc = _report(_project(tmp_path), "env.yaml", "--kubeconfig", str(cfg))
    assert result.returncode == 0, result.stderr
    assert doc is not None
    assert "Queues no cluster was reachable: 127.0.0.1:1: Connection refused" in doc.plain()


def test_the_cluster_infra_up_saved_is_tried_and_nothing_is_written_beside_the_state(tmp_path: Path) -> None:
    root = _project(tmp_path)
    env_dir = root / ".infra" / "env" / "demo"
    env_dir.mkdir(parents=True)
    (env_dir / "outputs.json").write_text(json.dumps({  # as `infra up` saves them; the endpoint: nothing listens
        "cluster_name": "demo", "cluster_endpoint": "https://127.0.0.1:1", "cluster_ca": "Y2E=", "vpc_id": "vpc-1"}))
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    result, doc = _report(root, "env.yaml")
    assert result.returncode == 0, result.stderr
    assert doc is not None
    assert "Queues no cluster was reachable: 127.0.0.1:1: Connection refused" in doc.plain()
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == sorted([*before, Path("report.html")])
    (env_dir / "outputs.json").write_text(json.dumps({"cluster_name": "demo"}))
    result, doc = _report(root, "env.yaml")
    assert doc is not None
    assert ("no cluster was reachable: no kubeconfig from the saved outputs: the Terraform outputs lack "
            "cluster_endpoint, cluster_ca: cannot build a kubeconfig") in doc.plain()


def test_bad_input_is_one_located_line_and_exit_2(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "bad.yaml").write_text("blueprint: 1\nname: bad\nprovider: aws\nregion: us-east-1\nnode_pools: 3\n")
    (root / "lab-a.yaml").write_text(LAB.format(name="lab-a"))
    (root / "afile").write_text("")
    cases = {
        ("missing.yaml", "--html", "r.html"): "error: cannot read blueprint missing.yaml",
        ("bad.yaml", "--html", "r.html"): "bad.yaml:5:",
        ("env.yaml",): "error: infra report: say where to write the page: --html OUT",
        ("env.yaml", "--html", str(root)): f"error: infra report: --html {root} is a folder",
        ("env.yaml", "--html", "afile/r.html"): "error: infra report: cannot write afile/r.html",
        ("env.yaml", "lab-a.yaml", "--kubeconfig", "k", "--html", "r.html"): "error: infra report: --kubeconfig",
    }
    for args, first in cases.items():
        result = _infra(root, "report", *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert result.stderr.startswith(first), (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert not (root / "r.html").exists()


def test_infra_help_lists_report_without_importing_the_page_builder() -> None:
    code = "import sys; from orchestrator.cli import main; print('orchestrator.report_page' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["False"]  # `infra --help` start-up time is benchmarked
    help_text = subprocess.run([INFRA, "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "report" in help_text
