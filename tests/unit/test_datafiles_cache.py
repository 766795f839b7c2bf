"""The per-user cache of parsed data files (orchestrator/datafiles.py): same values as a fresh
parse, invalidated by an edit, private, JSON only, and never in the way when it cannot work."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat

import pytest
import yaml

from orchestrator import datafiles, paths
from orchestrator.render.kubernetes import kueue


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("INFRA_CACHE_DIR", str(folder))
    return folder


def _entries(folder):
    return sorted((folder / "data").glob("*.json"))


@pytest.mark.parametrize("name", ["versions/eks.yaml", "nodes/mig.yaml", "versions/ci.yaml"])
def test_a_cached_file_reads_back_equal_to_a_fresh_parse(cache, name):
    path = paths.package_data() / name
    fresh = yaml.safe_load(path.read_text("utf-8"))
    first = datafiles.load(path)
    assert len(_entries(cache)) == 1
    second = datafiles.load(path)  # from the cache
    assert first == fresh and second == fresh


def test_dates_survive_the_cache(cache, tmp_path):
    source = tmp_path / "t.yaml"
    source.write_text("v1.35: {end_of_standard_support: 2027-03-27}\n")
    datafiles.load(source)
    again = datafiles.load(source)
    assert again == {"v1.35": {"end_of_standard_support": dt.date(2027, 3, 27)}}
    assert isinstance(again["v1.35"]["end_of_standard_support"], dt.date)


def test_an_edited_file_is_parsed_again(cache, tmp_path):
    source = tmp_path / "t.yaml"
    source.write_text("a: 1\n")
    assert datafiles.load(source) == {"a": 1}
    source.write_text("a: 22\n")  # another size: another key, whatever the clock's resolution
    assert datafiles.load(source) == {"a": 22}


def test_data_json_would_change_is_not_cached(cache, tmp_path):
    source = tmp_path / "t.yaml"
    source.write_text("1: one\nlist: [a, b]\n")  # an integer key: JSON would make it "1"
    assert datafiles.load(source) == {1: "one", "list": ["a", "b"]}
    assert _entries(cache) == []
    assert datafiles.load(source) == {1: "one", "list": ["a", "b"]}


def test_entries_are_private(cache):
    datafiles.load(paths.package_data() / "versions" / "eks.yaml")
    (entry,) = _entries(cache)
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert stat.S_IMODE((cache / "data").stat().st_mode) == 0o700
    json.loads(entry.read_text())  # data, not code


def test_a_corrupt_entry_is_ignored_and_replaced(cache, tmp_path):
    source = tmp_path / "t.yaml"
    source.write_text("a: [1, 2]\n")
    datafiles.load(source)
    (entry,) = _entries(cache)
    entry.write_text("{not json")
    assert datafiles.load(source) == {"a": [1, 2]}
    assert json.loads(entry.read_text()) == {"a": [1, 2]}


def test_an_unwritable_cache_is_no_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("INFRA_CACHE_DIR", str(blocker / "below-a-file"))
    source = tmp_path / "t.yaml"
    source.write_text("a: 1\n")
    assert datafiles.load(source) == {"a": 1}


def test_an_empty_cache_dir_turns_caching_off(tmp_path, monkeypatch):
    monkeypatch.setenv("INFRA_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    source = tmp_path / "t.yaml"
    source.write_text("a: 1\n")
    assert datafiles.load(source) == {"a": 1}
    assert not (tmp_path / "xdg").exists()


def test_an_entry_another_user_owns_is_not_read(cache, tmp_path, monkeypatch):
    source = tmp_path / "t.yaml"
    source.write_text("a: 1\n")
    datafiles.load(source)
    (entry,) = _entries(cache)
    entry.write_text('{"a": 666}')
    monkeypatch.setattr(datafiles.os, "getuid", lambda: os.stat(entry).st_uid + 1)  # as another user sees it
    assert datafiles.load(source) == {"a": 1}


def test_kueue_documents_from_the_cache_equal_a_fresh_parse(cache):
    fresh = kueue._documents(kueue.install_manifest(), ("Deployment",))
    kueue._install_documents.cache_clear()
    first = kueue.install_documents("Deployment")
    kueue._install_documents.cache_clear()
    second = kueue.install_documents("Deployment")  # from the cache
    assert first == fresh and second == fresh
    assert len(_entries(cache)) == 1
