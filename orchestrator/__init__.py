"""infra: turn a per-environment blueprint into a working GPU platform."""

__version__ = "0.1.0"
