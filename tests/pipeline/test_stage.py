"""The done.json contract: skip done stages, rerun changed ones, never leave half a stage."""

import pytest

from edgeslim.io import read_json
from edgeslim.pipeline.stage import clean_stale_temporaries, run_stage


def _writer(calls, text="a"):
    def fn(d):
        calls.append(d)
        (d / "out.txt").write_text(text)
        return {"n": len(calls)}
    return fn


def test_done_stage_is_skipped_and_changed_config_reruns(tmp_path):
    calls = []
    a = run_stage(tmp_path, "10-x", {"k": 1}, ["in"], _writer(calls))
    assert not a.cached and (tmp_path / "10-x" / "out.txt").read_text() == "a"
    assert read_json(tmp_path / "10-x" / "done.json")["key"] == a.key
    b = run_stage(tmp_path, "10-x", {"k": 1}, ["in"], _writer(calls))
    assert b.cached and len(calls) == 1 and b.outputs == {"n": 1} and b.hash == a.hash
    c = run_stage(tmp_path, "10-x", {"k": 2}, ["in"], _writer(calls, "b"))
    assert not c.cached and len(calls) == 2 and c.hash != a.hash
    d = run_stage(tmp_path, "10-x", {"k": 2}, ["other-input"], _writer(calls, "b"))
    assert not d.cached and len(calls) == 3
    assert d.hash == c.hash  # same content, same hash: later stages need not rerun


def test_a_failing_stage_leaves_no_folder_and_keeps_the_old_one(tmp_path):
    run_stage(tmp_path, "20-y", {"v": 1}, [], _writer([]))

    def boom(d):
        (d / "half.bin").write_bytes(b"x" * 10)
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        run_stage(tmp_path, "20-y", {"v": 2}, [], boom)
    assert not any(p.name.startswith(".20-y.tmp") for p in tmp_path.iterdir())
    assert not (tmp_path / "20-y" / "half.bin").exists()
    # the previous, complete stage is untouched but no longer matches the new key
    assert read_json(tmp_path / "20-y" / "done.json")["outputs"] == {"n": 1}


def test_stale_temporaries_from_a_killed_run_are_removed(tmp_path):
    (tmp_path / ".30-z.tmp-999").mkdir()
    (tmp_path / ".30-z.tmp-999" / "f").write_text("x")
    clean_stale_temporaries(tmp_path)
    assert list(tmp_path.iterdir()) == []
