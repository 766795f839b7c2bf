"""Benchmarks of the ``infra`` CLI and renderer. Not tests: nothing here asserts a time.

Run from the repository root: ``.venv/bin/python -m bench`` (or ``make bench``). It prints a
table and rewrites ``docs/benchmarks.md`` (``--no-write`` to skip, ``--out`` for another path).
"""
