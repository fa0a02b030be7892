"""Faults outside the run's own code: an observer that raises, an exception nobody foresaw.

Each still ends in one Result and a transcript that ends with ``run.end``.
"""

from __future__ import annotations

from ptcrun import Runtime, ScriptedProvider
from ptcrun.runtime import _turnloop

from .conftest import assert_ends, block, events_of, transcript_of


def test_an_observer_that_raises_is_dropped_and_the_run_goes_on(tmp_path):
    seen: list[str] = []

    def flaky(event: dict) -> None:
        if event["type"] == "turn.start":
            raise OSError(5, "Input/output error")  # its terminal went away (SIGHUP)

    rt = Runtime(
        planner=ScriptedProvider([block("done(len(data))")]),
        transcript_dir=tmp_path,
        observers=[flaky, lambda e: seen.append(e["type"])],
    )
    result = rt.run("Count.", ["a", "b"])
    assert result.status == "done" and result.answer == 2
    (warning,) = result.warnings
    assert warning.startswith("observer test_an_observer_that_raises_is_dropped_and_the_run_goes_on.<locals>.flaky "
                              "raised OSError: [Errno 5] Input/output error on a turn.start event")
    assert "the run and its transcript went on without it" in warning
    assert seen[-1] == "run.end"  # the other observers got every event
    assert_ends(events_of(transcript_of(tmp_path)), "done")


def test_an_unforeseen_exception_ends_the_run_with_status_error_and_run_end(tmp_path, monkeypatch):
    def broken(text: str) -> tuple[str | None, int]:
        raise RuntimeError("a bug in a helper")

    monkeypatch.setattr(_turnloop, "extract_code", broken)
    rt = Runtime(planner=ScriptedProvider([block("done(1)")]), transcript_dir=tmp_path)
    result = rt.run("Anything.", ["a chunk"])
    assert result.status == "error"
    message = str(result.error)
    assert message.startswith("the run stopped on an unexpected RuntimeError: a bug in a helper in broken ")
    assert "please report it with the transcript" in message
    assert isinstance(result.error.__cause__, RuntimeError)
    last = assert_ends(events_of(transcript_of(tmp_path)), "error")
    assert last["error"]["message"] == message
