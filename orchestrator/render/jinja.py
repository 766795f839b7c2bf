"""The one Jinja2 environment: StrictUndefined, no autoescape (we write HCL/YAML, not HTML).

One per template folder and process, each template compiled once: templates ship with infra
and do not change while it runs (no ``auto_reload`` stat of the file on every render)."""

from __future__ import annotations

from functools import cache
from pathlib import Path


@cache
def environment(root: Path):
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(root)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=False,
        lstrip_blocks=False,
        auto_reload=False,
    )


def render_template(root: Path, name: str, context: dict) -> str:
    return environment(root).get_template(name).render(**context)
