"""Today's date, from one place.

Validation judges dated facts (the EKS support calendar in ``data/versions/eks.yaml``) against
"today". Every reader asks :func:`today` instead of the wall clock, so the date is an input:
``INFRA_TODAY=YYYY-MM-DD`` fixes it for a process and its children (the test suite pins it;
an operator can ask "what will validate say on 2027-03-28?"), and a caller of the library can
pass ``today=`` where a function takes it.
"""

from __future__ import annotations

import datetime as dt
import os

from .errors import UsageError

ENV = "INFRA_TODAY"


def today() -> dt.date:
    """``$INFRA_TODAY`` when set (an ISO date), else the machine's local date."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{ENV}={value!r} is not a date: give YYYY-MM-DD, or unset it to use today's date",
                         hint="INFRA_TODAY only changes the day validation judges support windows by") from None
