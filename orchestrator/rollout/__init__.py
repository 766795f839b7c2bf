"""Rollouts: several environments run in dependency order, independent ones in parallel."""
