"""The HTML timeline, loaded in a real headless Chromium (Debian's package; .ci/run installs it)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ptcrun import Transcript
from ptcrun.transcript._html import write_html

from .example_runs import CHUNKS, block, example_run, runtime

WIDTH, HEIGHT = 1280, 1300


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed; .ci/run installs Debian's chromium package (apt-get install chromium)")
    return found


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


class Elements(HTMLParser):
    """Every element's tag and attributes, and the text inside elements with an id."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: dict[str, str] = {}
        self._open: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.elements.append((tag, attributes))
        if tag not in ("meta", "br", "img", "link", "input"):
            self._open.append(attributes.get("id"))

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for element_id in self._open:
            if element_id:
                self.text[element_id] = self.text.get(element_id, "") + data

    def with_class(self, name: str) -> list[dict[str, str]]:
        return [a for _, a in self.elements if name in a.get("class", "").split()]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    _, transcript = example_run(tmp_path_factory.mktemp("runs"))
    return transcript, write_html(transcript)


def dom(page_path: Path, profile: Path, fragment: str = "") -> Elements:
    out = chromium(profile, "--dump-dom", page_path.as_uri() + fragment).stdout
    parsed = Elements()
    parsed.feed(out)
    return parsed


def test_page_needs_no_network(page):
    transcript, path = page
    text = path.read_text()
    assert path == transcript.path.parent / "timeline.html"
    for outside in ("http://", "https://", "<link", " src=", "@import", "url("):
        assert outside not in text, outside


def test_chromium_shows_every_turn_and_a_gantt_per_pmap(page, tmp_path):
    transcript, path = page
    html = dom(path, tmp_path)
    body = next(a for tag, a in html.elements if tag == "body")
    assert body.get("data-ready") == str(len(transcript.calls))  # the script ran to its end
    turns = html.with_class("turn")
    assert [t["data-turn"] for t in turns] == [str(t.number) for t in transcript.turns]
    assert [g["data-pmap"] for g in html.with_class("gantt") if "data-pmap" in g] == [p.span for p in transcript.pmaps]
    bars = {a["data-span"]: a for a in html.with_class("bar") if "data-span" in a}
    assert set(bars) == {c.span for c in transcript.calls}
    for call in transcript.calls:
        bar = bars[call.span]
        assert call.status in bar["class"].split()
        assert f"{call.seconds * 1000:.0f} ms" in bar["title"] or f"{call.seconds * 1000:.1f} ms" in bar["title"]
        assert f"item {call.item} · slot {call.slot}" in bar["title"]
    assert sum("slow" in bars[s]["class"].split() for s in bars) == 3
    # The overview has rows for the sandbox, the planner, the programs and one pmap lane (the two
    # pmaps run one after the other), and one for the worker requests allowed in flight (the
    # worker's first request is rate limited); each Gantt has one row per thread of its pmap.
    assert [p.concurrency for p in transcript.pmaps] == [4, 3]
    assert len(html.with_class("row")) == 5 + 4 + 3
    lines = sum(len(t.program.rstrip("\n").split("\n")) for t in transcript.turns)
    assert len(html.with_class("ln")) == lines
    assert html.text["overview"].startswith("Run timeline")


def test_a_call_link_opens_its_details(page, tmp_path):
    transcript, path = page
    failed = next(c for c in transcript.calls if not c.ok)
    html = dom(path, tmp_path, f"#call={failed.span}")
    panel = next(a for tag, a in html.elements if a.get("id") == "details")
    assert "open" in panel["class"].split()
    assert "unknown level BAD" in html.text["details-body"]
    assert html.text["details-title"].startswith(f"lookup c{failed.id} · item {failed.item}")
    selected = list(html.with_class("selected"))
    assert [a["data-span"] for a in selected] == [failed.span]


def png_size_and_colours(path: Path) -> tuple[int, int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    chunks, offset = [], 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if kind == b"IDAT":
            chunks.append(data[offset + 8 : offset + 8 + length])
        offset += 12 + length
    pixels = zlib.decompress(b"".join(chunks))
    return width, height, len(set(pixels[::7]))


def test_screenshot_of_the_timeline(page, tmp_path):
    _, path = page
    shot = tmp_path / "timeline.png"
    chromium(tmp_path / "profile", f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}",
             "--hide-scrollbars", path.as_uri())
    width, height, colours = png_size_and_colours(shot)
    assert (width, height) == (WIDTH, HEIGHT)
    assert colours > 20  # a drawn page, not a blank one


def test_markup_in_the_run_is_shown_as_text(page, tmp_path):
    transcript, _ = page
    hostile = "</script><script>document.title='owned'</script><b id=injected>x</b>"
    events = []
    for written in transcript.events:
        event = dict(written)
        if event["type"] == "run.start":
            event["goal"] = hostile
        elif event["type"] == "program.output":
            event["text"] = hostile
        elif event["type"] == "call.end" and event.get("ok"):
            event["value"] = hostile
        events.append(event)
    path = write_html(Transcript.from_events(events), tmp_path / "hostile.html")
    html = dom(path, tmp_path / "profile")
    assert sum(tag == "script" for tag, _ in html.elements) == 2  # the data block and the page's script
    assert not any(a.get("id") == "injected" for _, a in html.elements)
    body = next(a for tag, a in html.elements if tag == "body")
    assert body.get("data-ready") == str(len(transcript.calls))  # the call data still parsed
    assert html.text["goal"] == hostile  # shown as the text it is
    assert hostile not in path.read_text()


LOOSE = """
print(tool.lookup("INFO"))
try:
    tool.lookup("BAD")
except Exception as exc:
    print("caught:", exc)
nested = pmap(lambda c: pmap(lambda x: tool.worker(x, "Count the ERROR lines.", schema={"type": "integer"}), [c, c]), data[:2])
print(tool.worker(data[3], "Count the ERROR lines.", schema={"type": "integer"}))
done(nested)
"""


@pytest.fixture(scope="module")
def loose_page(tmp_path_factory):
    result = runtime([block(LOOSE)], tmp_path_factory.mktemp("runs")).run("Count.", CHUNKS)
    assert result.status == "done", result.error
    transcript = Transcript.load(result.transcript)
    return transcript, write_html(transcript)


def test_every_call_has_a_bar_inside_a_pmap_or_not(loose_page, tmp_path):
    transcript, path = loose_page
    outside = [c for c in transcript.calls if c.pmap is None]
    assert [c.tool for c in outside] == ["lookup", "lookup", "worker"]
    assert {c.pmap for c in transcript.calls} - {None} == {"t1.m2", "t1.m3"}  # pmaps nested in t1.m1
    html = dom(path, tmp_path)
    bars = [a for a in html.with_class("bar") if "data-span" in a]
    assert sorted(a["data-span"] for a in bars) == sorted(c.span for c in transcript.calls)
    # The calls outside pmap have their own chart in their turn, before the pmaps', in order.
    charts = [(tag, a) for tag, a in html.elements if "gantt" in a.get("class", "").split()]
    assert [a.get("data-loose") or a.get("data-pmap") for _, a in charts] == ["t1", "t1.m1", "t1.m2", "t1.m3"]
    start = html.elements.index(charts[0])
    stop = html.elements.index(charts[1])
    inside = [a for _, a in html.elements[start:stop] if "data-span" in a]
    assert [a["data-span"] for a in inside] == [c.span for c in outside]
    failed = next(a for a in inside if "error" in a["class"].split())
    assert failed["title"].startswith("lookup c2 · error")
    assert "item" not in failed["title"]
    assert "calls outside pmap 3 calls, 1 failed · made by the program itself" in html.text["turn-1"]


def test_a_call_outside_pmap_opens_its_details(loose_page, tmp_path):
    transcript, path = loose_page
    worker = next(c for c in transcript.calls if c.pmap is None and c.tool == "worker")
    html = dom(path, tmp_path, f"#call={worker.span}")
    assert html.text["details-title"].startswith(f"worker c{worker.id} · ok")
    assert '"reply"' in html.text["details-body"]
