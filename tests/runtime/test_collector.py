"""Runtime.run sets the heap it starts with aside from the garbage collector, and gives it back."""
from __future__ import annotations

import gc
import threading

from ptcrun import Runtime, ScriptedProvider

DONE = "```python\ndone(len(data))\n```"


def frozen_during_a_run(tmp_path) -> tuple[int, int]:
    """Objects set aside while the run's observer sees its first event, and after it returns."""
    seen: list[int] = []
    rt = Runtime(planner=ScriptedProvider([DONE]), transcript_dir=tmp_path,
                 observers=[lambda event: seen.append(gc.get_freeze_count())])
    result = rt.run("Count.", ["a", "b"])
    assert result.status == "done"
    return seen[0], gc.get_freeze_count()


def test_the_run_sets_the_old_heap_aside_and_gives_it_back(tmp_path):
    assert gc.get_freeze_count() == 0
    during, after = frozen_during_a_run(tmp_path)
    assert during > 1000  # the modules, classes and data that existed when the run started
    assert after == 0


def test_a_heap_someone_else_froze_is_left_as_it_is(tmp_path):
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        during, after = frozen_during_a_run(tmp_path)
        # Not frozen again, and above all not thawed at the end: gc.unfreeze would thaw theirs.
        assert during == frozen and after == frozen
    finally:
        gc.unfreeze()


def test_a_run_in_another_thread_leaves_the_collector_alone(tmp_path):
    out: list[tuple[int, int]] = []
    thread = threading.Thread(target=lambda: out.append(frozen_during_a_run(tmp_path)))
    thread.start()
    thread.join()
    assert out == [(0, 0)]


def test_a_disabled_collector_is_left_alone(tmp_path):
    gc.disable()
    try:
        assert frozen_during_a_run(tmp_path) == (0, 0)
    finally:
        gc.enable()
