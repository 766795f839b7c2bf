"""Blueprint loading and validation: ``load(path) -> LoadedBlueprint``."""
