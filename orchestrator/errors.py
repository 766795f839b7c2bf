"""The InfraError tree.

Library code raises these; only ``orchestrator.cli`` catches them, prints the message and the
hint, and exits with ``exit_code``. Exit codes are part of the user contract (docs/exit-codes.md).
"""

from __future__ import annotations

from dataclasses import dataclass


class InfraError(Exception):
    """Base of every error a user is meant to see."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def lines(self) -> list[str]:
        return [self.message]


@dataclass(frozen=True)
class Problem:
    """One located problem in a blueprint: ``file:line:col path: message``."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class BlueprintError(InfraError):
    """Bad input: the blueprint (or a rollout file) is invalid. Carries every problem found."""

    exit_code = 2

    def __init__(self, problems: list[Problem], hint: str | None = None) -> None:
        self.problems = list(problems)
        first = str(self.problems[0]) if self.problems else "invalid blueprint"
        super().__init__(first, hint)

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


class UsageError(InfraError):
    """Bad input that is not located in a blueprint (a flag, a missing file, a secret)."""

    exit_code = 2


class TerraformError(InfraError):
    exit_code = 3


class AnsibleError(InfraError):
    exit_code = 4


class KubernetesError(InfraError):
    exit_code = 5


class LockedError(InfraError):
    """Another run holds the environment's lock."""

    exit_code = 6


class SandboxError(InfraError):
    """The embedded AWS emulator could not be started or reached."""

    exit_code = 7


class AuditError(InfraError):
    """The run records' audit chain is broken (or could not be checked against a head): one line per problem."""

    exit_code = 8

    def __init__(self, problems: list[str], hint: str | None = None) -> None:
        self.problems = list(problems)
        super().__init__(self.problems[0] if self.problems else "audit chain broken", hint)

    def lines(self) -> list[str]:
        return self.problems or [self.message]


class Interrupted(InfraError):
    exit_code = 130


class Cancelled(InfraError):
    """The user declined the confirmation: nothing was applied."""

    exit_code = 1

    def __init__(self) -> None:
        super().__init__("cancelled: nothing was applied")


class ConfirmationRequired(UsageError):
    """Changes need a confirmation that cannot be asked for (no terminal): nothing was applied."""
