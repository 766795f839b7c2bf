"""Kubernetes: the API client and what it does with objects; it never renders them.

``client``/``rest`` talk to the API server (with retries); ``rendered`` reads the files the
render stage wrote to ``build/<name>/kubernetes/``; ``validate`` checks objects against their
schemas offline; ``apply`` applies, prunes and waits; ``jobs``/``explain`` back ``infra job``,
``serving`` backs ``infra model`` (the ``handoff`` stage is ``orchestrator.stages.handoff``). Names
shared with the render live in ``orchestrator.conventions``; the manifests themselves are built
by ``orchestrator.render.kubernetes``, and ``orchestrator.ops`` composes the two. The
``kubernetes`` package is imported only inside the functions that talk to a cluster, so
importing this package stays cheap.
"""
