"""A small in-memory Kubernetes API server for tests (``server.FakeKube``)."""
