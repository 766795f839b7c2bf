"""``python -m bench.sandbox_pairs``: ``infra up/down --sandbox`` against plain ``terraform`` on the
same root module, as alternating pairs.

One project (``examples/sandbox.yaml``, the demo EKS environment), one emulator started before
the clock. A warm-up ``infra up`` and ``terraform destroy`` (untimed) initialise the sandbox copy
of the root module (``.infra/sandbox/<env>/terraform``, its ``TF_DATA_DIR`` ``tf-data`` and the
provider-mirror CLI config ``infra-cli.tfrc`` that infra writes; the local backend's state path
was given to that init). Then each cycle runs, in this order::

    infra up   --sandbox --auto-approve        A of "up vs apply"      (fresh: nothing exists)
    infra up   --sandbox --auto-approve        A of "no-op up vs plan" (nothing to change)
    terraform plan -detailed-exitcode          B of "no-op up vs plan"
    terraform destroy -auto-approve            B of "down vs destroy"
    terraform apply -auto-approve              B of "up vs apply"      (fresh again)
    infra down --sandbox --auto-approve        A of "down vs destroy"
    infra plan --sandbox                       untimed: ``down`` removes the sandbox copy, this
                                               initialises it again, so both sides start warm

``terraform`` runs in that same folder with that environment (``TF_DATA_DIR``,
``TF_CLI_CONFIG_FILE``, ``TF_IN_AUTOMATION=1``, ``CHECKPOINT_DISABLE=1``, ``-input=false``), so
it reads the same state and plugins and talks to the same emulator: the difference is what
``infra`` adds around it (render, copy, init check, the JSON streams, outputs, the refresh after
an apply, the manifest validation of the handoff, the run record). Needs terraform and a
provider mirror (``INFRA_TF_PLUGIN_MIRROR``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.paired import Pairs, command, table, timed

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "sandbox.yaml"
GOALS = {"noop": 1.1, "up": 1.05, "down": 1.1}


def infra_binary() -> str:
    beside = Path(sys.executable).with_name("infra")
    if beside.is_file():
        return str(beside)
    return shutil.which("infra") or sys.exit("bench: the `infra` console script is not installed (pip install -e .)")


def find_mirror() -> tuple[str | None, str]:
    """The provider mirror and where it came from; ``(None, why)`` when there is none."""
    value = os.environ.get("INFRA_TF_PLUGIN_MIRROR")
    if value:
        if not any(Path(value).glob("registry.terraform.io/hashicorp/aws/*")):
            return None, f"INFRA_TF_PLUGIN_MIRROR={value} holds no registry.terraform.io/hashicorp/aws"
        return value, "INFRA_TF_PLUGIN_MIRROR"
    found = subprocess.run([str(REPO / "scripts" / "find-tf-mirror")], capture_output=True, text=True).stdout.strip()
    if found and any(Path(found).glob("registry.terraform.io/hashicorp/aws/*")):
        return found, "scripts/find-tf-mirror (INFRA_TF_PLUGIN_MIRROR is not set)"
    return None, ("INFRA_TF_PLUGIN_MIRROR is not set and scripts/find-tf-mirror found no mirror with "
                  "hashicorp/aws: set it to the folder above registry.terraform.io/")


def missing() -> str | None:
    """Why these pairs cannot run here, or None."""
    if shutil.which("terraform") is None:
        return "terraform is not on PATH"
    mirror, why = find_mirror()
    return None if mirror else why


def run_pairs(count: int, work: Path, log=lambda m: print(m, file=sys.stderr)) -> dict:
    """``count`` cycles (see the module docstring); the three comparisons and what they ran."""
    from orchestrator.engines.terraform import CLI_CONFIG_NAME
    from orchestrator.workspace import Workspace

    mirror, source = find_mirror()
    if mirror is None:
        raise SystemExit(f"bench: {source}")
    infra, terraform = infra_binary(), shutil.which("terraform")
    project = work / "sandbox-pairs"
    project.mkdir(parents=True)
    shutil.copy(EXAMPLE, project / "sandbox.yaml")
    env = {**os.environ, "INFRA_TF_PLUGIN_MIRROR": mirror, "CHECKPOINT_DISABLE": "1"}
    env.pop("INFRA_STATE_DIR", None)
    name = "demo"
    ws = Workspace(root=project, name=name, sandbox=True)

    def infra_cmd(*args: str):
        return command([infra, *args, "sandbox.yaml", "--sandbox", "--auto-approve"], project, env)

    up, down = infra_cmd("up"), infra_cmd("down")
    reinit = command([infra, "plan", "sandbox.yaml", "--sandbox"], project, env)
    command([infra, "sandbox", "start"], project, env)()
    try:
        log(f"  sandbox pairs: warm-up (init, first apply, destroy) in {project}")
        up()
        tf_env = {**env, "TF_DATA_DIR": str(ws.tf_data_dir), "TF_CLI_CONFIG_FILE": str(ws.env_dir / CLI_CONFIG_NAME),
                  "TF_IN_AUTOMATION": "1"}
        tf_env.pop("INFRA_TF_PLUGIN_MIRROR")
        tf_dir = ws.terraform_dir
        plan = command([terraform, "plan", "-detailed-exitcode", "-input=false", "-lock-timeout=0s"], tf_dir, tf_env,
                       ok=(0, 2))
        apply = command([terraform, "apply", "-auto-approve", "-input=false", "-lock-timeout=0s"], tf_dir, tf_env)
        destroy = command([terraform, "destroy", "-auto-approve", "-input=false", "-lock-timeout=0s"], tf_dir, tf_env)
        destroy()  # the warm-up's resources: each cycle starts from nothing, on an initialised root
        pairs = {
            "noop": Pairs("no-op `infra up --sandbox`", "`terraform plan -detailed-exitcode`", goal=GOALS["noop"]),
            "up": Pairs("`infra up --sandbox` (fresh)", "`terraform apply` (fresh)", goal=GOALS["up"]),
            "down": Pairs("`infra down --sandbox`", "`terraform destroy`", goal=GOALS["down"]),
        }
        plan_codes: list[int] = []
        failed: list[str] = []
        while len(pairs["up"].a) < count:
            i = len(pairs["up"].a)
            try:
                a_up = timed(up)
                a_noop = timed(up)
                code: list[int] = []
                b_noop = timed(lambda: code.append(plan().returncode))  # noqa: B023 (called at once)
                b_down = timed(destroy)
                b_up = timed(apply)
                a_down = timed(down)
                reinit()
            except SystemExit as exc:  # a failed command: the cycle is dropped, cleaned up and run again
                failed.append(_why(str(exc)))
                log(f"  sandbox cycle {i + 1} failed ({failed[-1]}); cleaning up, running it again")
                if len(failed) > count:
                    raise
                if tf_dir.is_dir():
                    subprocess.run([terraform, "destroy", "-auto-approve", "-input=false"], cwd=tf_dir, env=tf_env,
                                   capture_output=True)
                subprocess.run([infra, "down", "sandbox.yaml", "--sandbox", "--auto-approve"], cwd=project, env=env,
                               capture_output=True)
                reinit()
                continue
            plan_codes += code
            pairs["up"].add(a_up, b_up)
            pairs["noop"].add(a_noop, b_noop)
            pairs["down"].add(a_down, b_down)
            log(f"  sandbox pair {i + 1}/{count}: up {a_up[0]:.1f}s / apply {b_up[0]:.1f}s; no-op up {a_noop[0]:.1f}s"
                f" / plan {b_noop[0]:.1f}s (exit {plan_codes[-1]}); down {a_down[0]:.1f}s / destroy {b_down[0]:.1f}s")
        if any(code != 0 for code in plan_codes):
            pairs["noop"].note = (f"terraform plan exit codes {plan_codes}: 2 means it found changes after infra's "
                                  "no-op up")
        if failed:
            pairs["up"].note = (f"{len(failed)} cycle(s) failed and were run again (not counted): "
                                + "; ".join(failed))
    finally:
        subprocess.run([infra, "down", "sandbox.yaml", "--sandbox", "--auto-approve"], cwd=project, env=env,
                       capture_output=True)
        subprocess.run([infra, "sandbox", "stop"], cwd=project, env=env, capture_output=True)
    return {"mirror": f"{mirror} ({source})", "pairs": [pairs["noop"], pairs["up"], pairs["down"]]}


def _why(message: str) -> str:
    """The command and terraform's error line of a failed step, on one line."""
    message = re.sub(r"\x1b\[[0-9;]*m", "", message)
    first = message.splitlines()[0].removeprefix("bench: ")
    error = next((line.strip(" │╷╵") for line in message.splitlines() if "Error:" in line), "")
    return f"{first.split(' (in ')[0]}: {error[:160]}" if error else first[:200]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5, help="cycles (default 5)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    why = missing()
    if why:
        print(f"bench: sandbox pairs not run: {why}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="infra-bench-sandbox-") as tmp:
        result = run_pairs(args.pairs, Path(tmp))
    print(table(result["pairs"]))
    if args.json:
        args.json.write_text(json.dumps([p.summary() for p in result["pairs"]], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
