"""Kubernetes: manifests from the blueprint, server-side apply/prune/wait, jobs and models.

``manifests.render_kubernetes`` is pure (blueprint -> files of ``build/<name>/kubernetes/``);
``client`` talks to the API server (with retries), ``apply`` applies, prunes and waits,
``jobs``/``serving`` back the ``infra job`` and ``infra model`` commands, ``stage`` is the
``handoff`` stage of ``infra up``. The ``kubernetes`` package is imported only inside the
functions that talk to a cluster, so importing this package stays cheap.
"""
