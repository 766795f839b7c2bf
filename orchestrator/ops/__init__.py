"""Operations the ``job`` and ``model`` commands call: one function per command.

This layer sits above the pure render (``render/``), the API client (``kube/``), the providers
and the workspace, and composes them (load the blueprint, pick the namespace and the
kubeconfig, build objects, apply them), so that ``cli/`` only parses and prints and ``kube/``
never needs the render. Modules: ``target`` (which cluster and namespace), ``kubeconfig``
(where the credentials come from; the ``handoff`` stage uses it too), ``jobs``, ``models``.
"""
