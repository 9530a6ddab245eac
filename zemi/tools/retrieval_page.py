"""What the retrieval browser (visualization/index.html) shows beyond the text files: how often the gold answer is
in the top-k documents, the BM25 score distribution per task, and where the query's words and the answer occur.

Everything is computed here, in Python, when the page is generated; the page's script only filters and draws.
"""

from __future__ import annotations

import html
import json
import re
import statistics
from dataclasses import dataclass, field
from typing import Iterable, Sequence

TOP_K = (1, 5, 30)
HISTOGRAM_BINS = 20
# Words too common to say anything about what BM25 matched; without this list every "the" would be highlighted.
STOP_WORDS = frozenset("""
a an and are as at be but by can do does for from has have he her his how i if in into is it its me my no not of on
or our she so such than that the their them then there these they this to was we were what when where which who why
will with would you your yes
""".split())
_WORD = re.compile(r"\w+")
_EDGE_PUNCTUATION = " \t\n\r\"'`.,;:!?()[]{}<>"

# A span is (start, end) in UTF-16 code units, the offsets JavaScript strings use.
Span = tuple[int, int]


def normalize_answer(text: str) -> str:
    """The gold answer as it is looked for: lower case, surrounding punctuation and quotes removed, inner whitespace
    collapsed to single spaces."""
    return " ".join(text.lower().strip(_EDGE_PUNCTUATION).split())


def answer_pattern(target_text: str) -> re.Pattern | None:
    """A case-insensitive whole-word pattern of the normalised answer (any whitespace between its words), or None
    for an empty answer, which appears nowhere."""
    words = normalize_answer(target_text).split()
    if not words:
        return None
    return re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, words)) + r"(?!\w)", re.IGNORECASE)


def answer_rank(pattern: re.Pattern | None, documents: Sequence[str]) -> int | None:
    """The rank (from 0) of the first document in which the answer appears, None if it appears in none."""
    if pattern is None:
        return None
    return next((rank for rank, text in enumerate(documents) if pattern.search(text)), None)


def _utf16(text: str, spans: Iterable[tuple[int, int]]) -> list[Span]:
    """Python (code point) offsets as JavaScript (UTF-16) offsets; they differ after characters outside the BMP."""
    if text.isascii():
        return list(spans)
    width = [0]
    for char in text:
        width.append(width[-1] + (2 if ord(char) > 0xFFFF else 1))
    return [(width[start], width[end]) for start, end in spans]


def answer_spans(pattern: re.Pattern | None, text: str) -> list[Span]:
    return [] if pattern is None else _utf16(text, (m.span() for m in pattern.finditer(text)))


def query_words(input_text: str) -> frozenset[str]:
    """The words of the prompted input (lower case) that are worth highlighting in a document."""
    return frozenset(w for w in (m.group().lower() for m in _WORD.finditer(input_text)) if w not in STOP_WORDS)


def query_spans(words: frozenset[str], text: str) -> list[Span]:
    return _utf16(text, (m.span() for m in _WORD.finditer(text) if m.group().lower() in words))


@dataclass
class Histogram:
    edges: list[float]  # len(counts) + 1 bin edges, equal widths; the last bin includes its right edge
    counts: list[int]


def histogram(values: Sequence[float], bins: int = HISTOGRAM_BINS) -> Histogram:
    if not values:
        return Histogram([], [])
    low, high = min(values), max(values)
    if low == high:
        return Histogram([low, high], [len(values)])
    width = (high - low) / bins
    counts = [0] * bins
    for value in values:
        counts[min(int((value - low) / width), bins - 1)] += 1
    return Histogram([low + width * i for i in range(bins)] + [high], counts)


@dataclass
class SplitSummary:
    """One task split's retrieval at a glance, over all its examples (not only the 50 shown)."""

    num_examples: int
    documents_stored: int  # the most documents any example has
    # k -> examples whose gold answer appears in one of their first k documents; None where fewer than k are stored
    answer_in_top: dict[int, int | None] = field(default_factory=dict)
    best_score: Histogram = field(default_factory=lambda: Histogram([], []))
    best_score_median: float | None = None


def summarize_split(examples: Iterable[tuple[str, Sequence[tuple[float, str]]]], top_k: Sequence[int] = TOP_K
                    ) -> SplitSummary:
    """Summary of (target text, [(score, document text) by rank]) pairs."""
    hits = dict.fromkeys(top_k, 0)
    best_scores: list[float] = []
    stored = num_examples = 0
    for target_text, documents in examples:
        num_examples += 1
        stored = max(stored, len(documents))
        if documents:
            best_scores.append(documents[0][0])
        rank = answer_rank(answer_pattern(target_text), [text for _, text in documents])
        for k in top_k:
            hits[k] += rank is not None and rank < k
    answer_in_top = {k: (count if k <= stored else None) for k, count in hits.items()}
    median = statistics.median(best_scores) if best_scores else None
    return SplitSummary(num_examples, stored, answer_in_top, histogram(best_scores), median)


def summary_to_json(summary: SplitSummary) -> dict:
    return {"num_examples": summary.num_examples, "documents_stored": summary.documents_stored,
            "answer_in_top": {str(k): v for k, v in summary.answer_in_top.items()},
            "best_score": {"edges": summary.best_score.edges, "counts": summary.best_score.counts},
            "best_score_median": summary.best_score_median}


def summary_from_json(data: dict) -> SplitSummary:
    return SplitSummary(data["num_examples"], data["documents_stored"],
                        {int(k): v for k, v in data["answer_in_top"].items()}, Histogram(**data["best_score"]),
                        data["best_score_median"])


def instance_record(instance) -> dict:
    """An Instance as the page's script reads it, with its highlight spans and the rank where the answer is first."""
    pattern, words = answer_pattern(instance.target_text), query_words(instance.input_text)
    texts = [document.text for document in instance.documents]
    return {"index": instance.index, "input_text": instance.input_text, "target_text": instance.target_text,
            "answer_rank": answer_rank(pattern, texts),
            "documents": [{"rank": document.rank, "score": document.score, "text": document.text,
                           "gold": answer_spans(pattern, document.text), "query": query_spans(words, document.text)}
                          for document in instance.documents]}


def svg_histogram(counts: Histogram, *, width: int = 160, height: int = 24) -> str:
    """Inline SVG bars, one per bin; hovering a bar says its range and count."""
    if not counts.counts:
        return ""
    bar, peak = width / len(counts.counts), max(counts.counts)
    bars = []
    for i, count in enumerate(counts.counts):
        tall = height * count / peak
        bars.append(f'<rect x="{i * bar:.1f}" y="{height - tall:.1f}" width="{max(bar - 1, 1):.1f}" '
                    f'height="{tall:.1f}"><title>{counts.edges[i]:.2f} to {counts.edges[i + 1]:.2f}: {count} '
                    f'example{"s" * (count != 1)}</title></rect>')
    return (f'<svg class="histogram" width="{width}" height="{height + 1}" viewBox="0 0 {width} {height + 1}" '
            f'role="img" aria-label="histogram of best scores">{"".join(bars)}'
            f'<line x1="0" x2="{width}" y1="{height + 0.5}" y2="{height + 0.5}"/></svg>')


def _top_k_cell(k: int, summary: SplitSummary) -> str:
    hits = summary.answer_in_top.get(k)
    if hits is None:
        return (f'<td class="num na" data-k="{k}" title="only {summary.documents_stored} documents are stored per '
                f'example">—</td>')
    share = 100 * hits / summary.num_examples if summary.num_examples else 0
    return (f'<td class="num" data-k="{k}" data-hits="{hits}" data-total="{summary.num_examples}">'
            f'{share:.0f}%<small>{hits}/{summary.num_examples}</small></td>')


def overview_table(summaries: dict[str, dict[str, SplitSummary]], top_k: Sequence[int] = TOP_K) -> str:
    """The per-task table: how often the answer is retrieved, and the best scores' distribution."""
    head = "".join(f'<th class="num">top {k}</th>' for k in top_k)
    rows = []
    for task, splits in summaries.items():
        for number, (split, summary) in enumerate(splits.items()):
            task_cell = f'<td rowspan="{len(splits)}" class="task">{html.escape(task)}</td>' if number == 0 else ""
            edges, median = summary.best_score.edges, summary.best_score_median
            scores = (f'<span class="axis">{edges[0]:.1f}</span>{svg_histogram(summary.best_score)}'
                      f'<span class="axis">{edges[-1]:.1f}</span><small>median {median:.1f}</small>'
                      if edges else '<small>no documents</small>')
            name = html.escape(task)
            rows.append(f'<tr data-task="{name}" data-split="{split}" title="browse {name} ({split})">{task_cell}'
                        f'<td>{split}</td><td class="num">{summary.num_examples}</td>'
                        f'{"".join(_top_k_cell(k, summary) for k in top_k)}<td class="scores">{scores}</td></tr>')
    return (f'<table id="overview"><thead><tr><th rowspan="2">task</th><th rowspan="2">split</th>'
            f'<th rowspan="2" class="num">examples</th><th colspan="{len(top_k)}">gold answer in the top k documents'
            f'</th><th rowspan="2">best document\'s BM25 score, per example</th></tr><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def render_page(title: str, summaries: dict[str, dict[str, SplitSummary]], views: dict, extension: str = "") -> str:
    """The whole page: `views[task][split][kind]` lists `instance_record`s; no external resource, so it works from
    file:// and offline. `extension` is script run after the page's functions are defined and before it first shows
    anything (`page_predictions.script`); without one the page is byte for byte what it was before extensions."""
    payload = json.dumps(views, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    head = (_PAGE_HEAD.replace("__TITLE__", html.escape(title)).replace("__OVERVIEW__", overview_table(summaries))
            .replace("__TOP_K__", ", ".join(map(str, TOP_K))).replace("__DATA__", payload))
    return head + extension + _PAGE_TAIL


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>BM25 retrieval: __TITLE__</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 1.2em auto; max-width: 78em; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; margin: 0 0 .2em; } h2 { font-size: 1.15em; margin: 1.4em 0 .4em; }
p { margin: .3em 0; } .note { color: #555; font-size: 90%; max-width: 62em; }
small { color: #666; } code { background: #f2f2f2; padding: 0 .2em; }
table#overview { border-collapse: collapse; }
#overview th, #overview td { border-bottom: 1px solid #ddd; padding: .1em .6em; text-align: left; }
#overview th { font-weight: 600; font-size: 90%; background: #f4f6f8; }
#overview .num { text-align: right; font-variant-numeric: tabular-nums; }
#overview td.num small { margin-left: .4em; font-size: 75%; }
#overview td.na { color: #999; text-align: center; }
#overview tbody tr { cursor: pointer; } #overview tbody tr:hover td, #overview tr.current td { background: #eef4fb; }
#overview td.task { font-weight: 600; background: none !important; vertical-align: top; }
.scores { white-space: nowrap; } .scores small { margin-left: .6em; }
.axis { font-size: 75%; color: #666; padding: 0 .3em; font-variant-numeric: tabular-nums; }
svg.histogram { vertical-align: middle; } svg.histogram rect { fill: #5b84b1; } svg.histogram line { stroke: #999; }
#controls { position: sticky; top: 0; background: #fff; padding: .5em 0; border-bottom: 1px solid #ddd; z-index: 1;
            display: flex; flex-wrap: wrap; gap: .5em 1.2em; align-items: center; }
#controls select, #controls input { font: inherit; padding: .15em .3em; }
#search { flex: 1 1 16em; max-width: 28em; } #count { color: #555; }
.legend { font-size: 90%; color: #555; margin: .5em 0; }
mark { background: none; color: inherit; padding: 0 1px; border-radius: 2px; }
mark.query { background: #fff0a8; } mark.gold { background: #b5e6c0; box-shadow: inset 0 -2px #2f8f4e; }
mark.search { outline: 2px solid #e8590c; }
.instance { border: 1px solid #ddd; border-radius: 6px; margin: .8em 0; padding: .5em .8em; }
.instance header { display: flex; gap: 1em; align-items: baseline; flex-wrap: wrap; }
.badge { font-size: 85%; padding: 0 .5em; border-radius: 1em; background: #eee; color: #555; }
.badge.found { background: #d3f0da; color: #1e6b37; }
.io { display: grid; grid-template-columns: 1fr 16em; gap: .8em; margin: .4em 0; }
.label { display: block; font-size: 80%; color: #666; text-transform: uppercase; letter-spacing: .03em; }
pre { white-space: pre-wrap; font: inherit; background: #f7f7f7; padding: .3em .5em; margin: 0; border-radius: 4px; }
ol.docs { list-style: none; padding: 0; margin: 0; }
ol.docs li { display: grid; grid-template-columns: 6.5em 1fr; border-top: 1px solid #eee; padding: .25em 0; }
.rank { font-size: 85%; color: #666; font-variant-numeric: tabular-nums; }
ol.docs .text { white-space: pre-line; }  /* C4 documents keep their newlines */
#empty { color: #777; font-style: italic; }
</style></head><body>
<h1>What BM25 retrieved</h1>
<p class="note">Task examples, each with its prompted input, its gold target and the documents BM25 retrieved for it
(best first). Data: <b>__TITLE__</b>.</p>
<h2>Per task</h2>
__OVERVIEW__
<p class="note"><b>Gold answer in the top k documents</b>: the share of the split's examples (all of them, not only
those shown below) whose gold target, lower-cased and stripped of surrounding punctuation, appears as whole words
(case-insensitive) in one of its first k documents (k = __TOP_K__); “—”: fewer than k documents are stored per
example. <b>Histogram</b>: each example's best document score, hover a bar for its range. Click a row to browse it.</p>
<h2>Browse</h2>
<div id="controls">
<label>Task <select id="task"></select></label>
<label>Split <select id="split"></select></label>
<label>Show <select id="kind"></select></label>
<input id="search" type="search" placeholder="filter: words in input, target, documents" aria-label="filter">
<span id="count"></span>
</div>
<p class="legend">Highlights: <mark class="query">a word of the input</mark> (common words like “the” aside)
· <mark class="gold">the gold answer</mark> · <mark class="search">your filter words</mark></p>
<div id="instances"></div>
<script>
const DATA = __DATA__;
const KINDS = {first: "the first %n examples", highest: "%n with the highest best score",
               lowest: "%n with the lowest best score"};
const $ = id => document.getElementById(id);
const [task, split, kind, search, list, count] = ["task", "split", "kind", "search", "instances", "count"].map($);

function element(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children);
  return node;
}
function fill(select, values, labels) {
  const keep = select.value;
  select.replaceChildren(...values.map(v => new Option(labels ? labels(v) : v, v)));
  if (values.includes(keep)) select.value = keep;
}
// Text with <mark>s; spans are [start, end, class] and may overlap (a piece gets every class that covers it).
function marked(text, spans) {
  const cuts = [...new Set([0, text.length, ...spans.flatMap(s => [s[0], s[1]])])].sort((a, b) => a - b);
  const out = document.createDocumentFragment();
  for (let i = 0; i + 1 < cuts.length; i++) {
    const [a, b] = [cuts[i], cuts[i + 1]], piece = text.slice(a, b);
    const classes = [...new Set(spans.filter(s => s[0] <= a && b <= s[1]).map(s => s[2]))];
    out.append(classes.length ? element("mark", classes.join(" "), piece) : piece);
  }
  return out;
}
function filterWords() {
  return search.value.trim().split(/\\s+/).filter(Boolean)
    .map(w => new RegExp(w.replace(/[.*+?^${}()|[\\]\\\\]/g, "\\\\$&"), "giu"));
}
function found(text, words) {
  return words.flatMap(w => [...text.matchAll(w)].filter(m => m[0])
    .map(m => [m.index, m.index + m[0].length, "search"]));
}
function tagged(spans, name) { return spans.map(([a, b]) => [a, b, name]); }

function card(inst, words) {
  const best = inst.documents.length ? inst.documents[0].score.toFixed(2) : "none";
  const answer = inst.answer_rank === null ? element("span", "badge", "answer in no document shown")
    : element("span", "badge found", "answer first in document " + inst.answer_rank);
  const docs = element("ol", "docs", ...inst.documents.map(d => element("li", "",
    element("span", "rank", "#" + d.rank + " · " + d.score.toFixed(2)),
    element("span", "text", marked(d.text, [...tagged(d.query, "query"), ...tagged(d.gold, "gold"),
                                            ...found(d.text, words)])))));
  const field = (label, text) => element("div", "", element("span", "label", label),
                                         element("pre", "", marked(text, found(text, words))));
  const io = element("div", "io", field("input", inst.input_text), field("target", inst.target_text));
  const node = element("article", "instance",
    element("header", "", element("b", "", "Example " + inst.index), element("small", "", "best score " + best),
            answer),
    io, docs);
  node.dataset.index = inst.index;
  return node;
}
function matches(inst, words) {
  const text = [inst.input_text, inst.target_text, ...inst.documents.map(d => d.text)].join("\\n");
  return words.every(w => { w.lastIndex = 0; return w.test(text); });
}
function show() {
  fill(split, Object.keys(DATA[task.value]));
  const views = DATA[task.value][split.value];
  fill(kind, Object.keys(views), k => KINDS[k].replace("%n", views[k].length));
  const instances = views[kind.value], words = filterWords();
  const cards = instances.map(inst => { const c = card(inst, words); c.hidden = !matches(inst, words); return c; });
  const shown = cards.filter(c => !c.hidden).length;
  list.replaceChildren(...cards, ...(shown ? [] : [element("p", "", "No example matches the filter.")]));
  if (!shown) list.lastChild.id = "empty";
  count.textContent = words.length ? shown + " of " + instances.length + " examples match"
                                   : instances.length + " examples";
  for (const row of document.querySelectorAll("#overview tbody tr"))
    row.classList.toggle("current", row.dataset.task === task.value && row.dataset.split === split.value);
}
__EXTENSION__fill(task, Object.keys(DATA));
for (const control of [task, split, kind]) control.addEventListener("change", show);
search.addEventListener("input", show);
for (const row of document.querySelectorAll("#overview tbody tr")) row.addEventListener("click", () => {
  task.value = row.dataset.task; fill(split, Object.keys(DATA[task.value])); split.value = row.dataset.split; show();
  $("controls").scrollIntoView();
});
show();
</script></body></html>
"""
# The extension goes between the two parts, after the inserted data: no text of the data can be taken for a marker.
_PAGE_HEAD, _PAGE_TAIL = _PAGE.split("__EXTENSION__")
