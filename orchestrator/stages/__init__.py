"""The pipelines of ``plan``, ``up``, ``down``, ``configure`` and ``handoff``: one module per stage.

- ``context``: the typed :class:`~orchestrator.stages.context.Context` every stage receives
  (what never changes during a run, frozen) and its :class:`~orchestrator.stages.context.RunState`
  (what the stages produce);
- ``render``, ``terraform`` (plan, apply, outputs), ``configure`` (Ansible; ``hosts`` for bare
  metal), ``handoff`` (Kubernetes): the stages;
- ``pipeline``: which stages each command runs per provider, and ``run`` (the lock, the timing,
  the run record, whatever the outcome);
- ``commands``: one function per CLI command (load, check, resolve secrets, start the sandbox,
  run), so that ``cli/`` only parses options and prints;
- ``saved_plan``: ``plan --out DIR`` (save each plan with what it was made from) and
  ``up --plan DIR`` (apply exactly that plan, or refuse when anything changed).

Nothing is imported here: ``import orchestrator.stages.pipeline`` loads only what it needs.
"""
