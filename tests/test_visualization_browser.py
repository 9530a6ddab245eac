"""The retrieval browser (index.html) in real headless Chromium, driven over the DevTools protocol: it loads from
file:// without fetching anything, the filter box shows and hides the right examples, highlights appear, and the
top-k table says what Python computed from the data."""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from datasets import load_from_disk

from tests.evaluation_files import ZEMI, from_template_dir, gold_of, settings_for, write_eval_dir, wrong_of
from zemi.data import build
from zemi.tools import retrieval_page
from zemi.tools import visualize_retrieval as vis

REPO = Path(__file__).resolve().parents[1]
FIXTURE_TASK = REPO / "tests" / "fixtures" / "retrieval" / "wordnet_acts"
CORPUS = REPO / "data" / "demo" / "corpus.jsonl.gz"
BROWSER = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(BROWSER is None, reason="chromium is not installed (apt-get install chromium)")]


class Chromium:
    """A headless Chromium and one page of it, driven over the DevTools protocol; events are kept in `events`."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 900):
        import websocket

        self.process = subprocess.Popen(
            [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", f"--window-size={width},{height}",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"  # Chromium writes the port it chose here
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError("Chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as response:
            page = next(target for target in json.load(response) if target["type"] == "page")
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30)
        self.ids = itertools.count(1)
        self.events: list[dict] = []
        for domain in ("Page", "Runtime", "Network"):
            self.send(f"{domain}.enable")

    def send(self, method: str, **params) -> dict:
        number = next(self.ids)
        self.socket.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        deadline = time.monotonic() + 30
        while self.evaluate("document.readyState") != "complete":
            if time.monotonic() > deadline:
                raise TimeoutError(url)
            time.sleep(0.05)

    def type(self, text: str) -> None:
        """Key presses into the focused element, one character at a time, as a person types."""
        for char in text:
            self.send("Input.dispatchKeyEvent", type="keyDown", text=char, key=char)
            self.send("Input.dispatchKeyEvent", type="keyUp", key=char)

    def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        params = {"format": "png", "captureBeyondViewport": full_page}
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", **params)["data"]))
        return path

    def close(self) -> None:
        if getattr(self, "socket", None):
            self.socket.close()
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The fixture task's 30aug data and its visualization (8 examples, 3 documents each)."""
    root = tmp_path_factory.mktemp("data") / "30aug"
    build.main(["--tasks", str(FIXTURE_TASK), "--corpus", str(CORPUS), "--num_documents", "3000",
                "--output", str(root)])
    output = root.parent / "visualization"
    vis.main(["--data_root", str(root), "--output", str(output), "--num_instances", "8", "--num_documents", "3"])
    return root, output


@pytest.fixture(scope="module")
def browser(built, tmp_path_factory):
    chromium = Chromium(tmp_path_factory.mktemp("profile"))
    chromium.open((built[1] / "index.html").as_uri())
    yield chromium
    chromium.close()


def shown_indices(browser) -> list[int]:
    """The examples actually laid out on the page (a hidden one has no box)."""
    return browser.evaluate("[...document.querySelectorAll('article.instance')].filter(a => a.getClientRects()"
                            ".length).map(a => Number(a.dataset.index))")


def search_for(browser, text: str) -> None:
    browser.evaluate("{ const box = document.getElementById('search'); box.value = ''; "
                     "box.dispatchEvent(new Event('input')); box.focus(); }")
    browser.type(text)


def test_loads_from_file_without_errors_or_requests(browser):
    assert browser.evaluate("document.querySelectorAll('article.instance').length") == 8
    assert not [event for event in browser.events if event["method"] == "Runtime.exceptionThrown"]
    requested = [event["params"]["request"]["url"] for event in browser.events
                 if event["method"] == "Network.requestWillBeSent"]
    assert requested and all(url.startswith("file://") for url in requested), requested


def test_filter_shows_only_matching_examples_and_marks_the_words(browser, built, tmp_path):
    # The page opens on the first task, split and kind: the train split's first examples.
    instances = vis.parse_instances((built[1] / "first50_retrieval_instances" / "retrieval_vis_train__wordnet_acts.txt")
                                    .read_text())
    selected = browser.evaluate("['task', 'split', 'kind'].map(id => document.getElementById(id).value)")
    assert selected == ["wordnet_acts", "train", "first"]

    def text_of(item):
        return "\n".join([item.input_text, item.target_text, *(doc.text for doc in item.documents)]).lower()

    # A word of one example's target that some examples contain and others do not.
    word = next(w for item in instances for w in re.findall(r"[a-z]{4,}", item.target_text.lower())
                if 0 < sum(w in text_of(other) for other in instances) < len(instances))
    search_for(browser, word.upper())  # the filter ignores case
    expected = [item.index for item in instances if word in text_of(item)]
    assert shown_indices(browser) == expected
    assert browser.evaluate("document.getElementById('count').textContent") == f"{len(expected)} of 8 examples match"
    marks = browser.evaluate("[...document.querySelectorAll('article.instance:not([hidden]) mark.search')]"
                             ".map(m => m.textContent.toLowerCase())")
    assert marks and set(marks) == {word}
    browser.screenshot(tmp_path / "filtered.png")

    search_for(browser, f"{word} zzzznotaword")  # every word must occur
    assert shown_indices(browser) == [] and browser.evaluate("document.getElementById('empty') !== null")
    search_for(browser, "")
    assert shown_indices(browser) == [item.index for item in instances]


def test_gold_answer_and_query_words_are_highlighted_where_python_finds_them(browser, built):
    search_for(browser, "")
    instances = vis.parse_instances((built[1] / "first50_retrieval_instances" / "retrieval_vis_train__wordnet_acts.txt")
                                    .read_text())
    on_page = browser.evaluate("[...document.querySelectorAll('article.instance')].map(a => "
                               "[...a.querySelectorAll('ol.docs li')].map(li => "
                               "[[...li.querySelectorAll('mark.gold')].map(m => m.textContent),"
                               " [...li.querySelectorAll('mark.query')].map(m => m.textContent)]))")
    gold_found = 0
    for item, documents in zip(instances, on_page, strict=True):
        pattern, words = retrieval_page.answer_pattern(item.target_text), retrieval_page.query_words(item.input_text)
        for document, (gold, query) in zip(item.documents, documents, strict=True):
            expected_gold = [] if pattern is None else [m.group() for m in pattern.finditer(document.text)]
            assert "".join(gold) == "".join(expected_gold)
            assert query == [m.group() for m in re.finditer(r"\w+", document.text) if m.group().lower() in words]
            gold_found += bool(gold)
    assert gold_found, "the fixture should have some answers inside documents"
    assert browser.evaluate("document.querySelectorAll('article.instance mark.query').length") > 0


def test_top_k_table_says_what_python_computed(browser, built):
    root, _ = built
    template = vis.template_dirs(root / "wordnet_acts")[0]
    splits = load_from_disk(str(template))
    cells = browser.evaluate("[...document.querySelectorAll('#overview td[data-k]')].map(td => [td.closest('tr')"
                             ".dataset.split, Number(td.dataset.k), td.dataset.hits ?? null, td.dataset.total ?? null,"
                             " td.textContent])")
    expected = []
    for short_name, split_name in (("train", "train"), ("eval", "validation")):
        summary = retrieval_page.summarize_split(
            (row["targets_pretokenized"], [(d["score"], d["inputs_pretokenized"]) for d in row["chosen_examples"]])
            for row in splits[split_name])
        for k in retrieval_page.TOP_K:
            hits = summary.answer_in_top[k]
            if hits is None:
                expected.append([short_name, k, None, None, "—"])
            else:
                total = summary.num_examples
                expected.append([short_name, k, str(hits), str(total), f"{100 * hits / total:.0f}%{hits}/{total}"])
    assert cells == expected
    assert any(cell[2] is not None and cell[2] != "0" for cell in cells)


def test_the_committed_demo_page_opens_and_shows_its_summaries(tmp_path):
    """visualization/index.html as committed: it runs without errors and its table is its summaries/ files."""
    folder = REPO / "visualization"
    chromium = Chromium(tmp_path / "profile")
    try:
        chromium.open((folder / "index.html").as_uri())
        assert chromium.evaluate("document.querySelectorAll('article.instance').length") > 0
        assert not [event for event in chromium.events if event["method"] == "Runtime.exceptionThrown"]
        cells = chromium.evaluate("[...document.querySelectorAll('#overview td[data-k]')].map(td => [td.closest('tr')"
                                  ".dataset.task, td.closest('tr').dataset.split, Number(td.dataset.k),"
                                  " td.dataset.hits === undefined ? null : Number(td.dataset.hits)])")
        chromium.screenshot(tmp_path / "demo.png", full_page=False)
    finally:
        chromium.close()
    expected = [[path.stem, split, int(k), hits]
                for path in sorted((folder / "summaries").glob("*.json"))
                for split, summary in json.loads(path.read_text()).items()
                for k, hits in summary["answer_in_top"].items()]
    assert cells == expected


@pytest.fixture(scope="module")
def answered(built, tmp_path_factory):
    """The same page with two runs' answers (--eval_dirs): No Aug right on even rows, Zemi unless the row is 2 mod 3."""
    root, _ = built
    directory = tmp_path_factory.mktemp("answered")
    rules = {"no_aug_base": lambda n: n % 2 == 0, "zemi_base": lambda n: n % 3 != 2}
    runs = []
    for run, rule in rules.items():
        answers = [from_template_dir(path, lambda n, ex, rule=rule: gold_of(ex) if rule(n) else wrong_of(ex))
                   for path in vis.template_dirs(root / "wordnet_acts")]
        architecture, documents = ("T5", 0) if run == "no_aug_base" else (ZEMI, 3)
        runs.append(write_eval_dir(directory / run, run, answers, architecture=architecture,
                                   settings=settings_for(architecture, documents_read=documents)))
    output = directory / "visualization"
    vis.main(["--data_root", str(root), "--output", str(output), "--num_instances", "8", "--num_documents", "3",
              "--eval_dirs", *map(str, runs)])
    chromium = Chromium(directory / "profile")
    chromium.open((output / "index.html").as_uri())
    yield chromium, rules
    chromium.close()


def choose(browser, control: str, value: str) -> None:
    browser.evaluate(f"{{ const c = document.getElementById({control!r}); c.value = {value!r}; "
                     "c.dispatchEvent(new Event('change')); }")


def test_answers_show_on_the_eval_split_and_filter_where_retrieval_helped_or_hurt(answered, tmp_path):
    browser, rules = answered
    assert browser.evaluate("document.getElementById('outcome').closest('label').hidden")  # train split first
    assert browser.evaluate("document.querySelectorAll('.badge.right, .badge.wrong').length") == 0
    choose(browser, "split", "eval")
    badges = browser.evaluate("[...document.querySelectorAll('article.instance')].map(a => [Number(a.dataset.index),"
                              " [...a.querySelectorAll('.badge.right, .badge.wrong')].map(b => [b.textContent,"
                              " b.classList.contains('right')])])")
    assert [index for index, _ in badges] == list(range(8))
    for index, marks in badges:
        assert [(text.split(":")[0], right) for text, right in marks] == [(run, rule(index))
                                                                        for run, rule in rules.items()]
        assert all(text.endswith("✓" if right else "✗") for text, right in marks)
    options = browser.evaluate("[...document.getElementById('outcome').options].map(o => o.value)")
    assert options == ["all", "helped:zemi_base", "hurt:zemi_base"]
    no_aug, zemi = rules.values()
    choose(browser, "outcome", "helped:zemi_base")
    helped = [n for n in range(8) if zemi(n) and not no_aug(n)]
    assert shown_indices(browser) == helped
    assert browser.evaluate("document.getElementById('count').textContent") == f"{len(helped)} of 8 examples match"
    browser.screenshot(tmp_path / "helped.png")
    choose(browser, "outcome", "hurt:zemi_base")
    assert shown_indices(browser) == [n for n in range(8) if no_aug(n) and not zemi(n)]
    search_for(browser, "zzzznotaword")  # the word filter and the answers filter both apply
    assert shown_indices(browser) == []
    search_for(browser, "")
    choose(browser, "outcome", "all")
    assert shown_indices(browser) == list(range(8))
    assert not [event for event in browser.events if event["method"] == "Runtime.exceptionThrown"]
