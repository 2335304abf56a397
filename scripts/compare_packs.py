"""Compare two executive packs: visible text, tags and attributes, key figures, chart data.

    python scripts/compare_packs.py OLD.html NEW.html

A normalised comparison, for changes to the templates or the section code that must not
change what the pack shows: whitespace between block elements, attribute order, quoting
and character references may differ; the text, the tags with their attribute values, every
``data-value`` and every chart's data, layout and config (the ``Plotly.newPlot`` arguments,
compared as JSON) must not. The CSS is compared without comments and whitespace, plotly.js
by its bytes. Exit code 0 when the packs show the same, 1 with the first differences.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

#: tags around which whitespace-only text does not show
BLOCK = {
    "html", "head", "body", "meta", "title", "style", "script", "header", "nav", "main",
    "footer", "section", "div", "p", "h1", "h2", "h3", "table", "thead", "tbody", "tr", "th",
    "td", "ul", "li", "dl", "dt", "dd",
}  # fmt: skip


class _Events(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list[tuple] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.events.append(("start", tag, tuple(sorted(attrs))))
        if tag in ("script", "style"):
            self._in = tag

    def handle_endtag(self, tag: str) -> None:
        self.events.append(("end", tag))
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.scripts.append(data)
        elif self._in == "style":
            self.styles.append(data)
        else:
            self.events.append(("text", re.sub(r"\s+", " ", data)))

    def handle_decl(self, decl: str) -> None:
        self.events.append(("decl", decl.lower()))


def _visible(events: list[tuple]) -> list[tuple]:
    """Events without the whitespace-only text next to a block tag (it does not show)."""
    merged: list[tuple] = []
    for e in events:  # adjacent text nodes are one text
        if e[0] == "text" and merged and merged[-1][0] == "text":
            merged[-1] = ("text", re.sub(r"\s+", " ", merged[-1][1] + e[1]))
        else:
            merged.append(e)
    out = []
    for i, e in enumerate(merged):
        if e[0] == "text" and not e[1].strip():
            prev = merged[i - 1] if i else None
            nxt = merged[i + 1] if i + 1 < len(merged) else None
            if (prev is None or prev[1] in BLOCK) or (nxt is None or nxt[1] in BLOCK):
                continue
        if e[0] == "text":
            prev, nxt = (
                (merged[i - 1] if i else None),
                (merged[i + 1] if i + 1 < len(merged) else None),
            )
            text = e[1]
            if prev is None or prev[1] in BLOCK:
                text = text.lstrip()
            if nxt is None or nxt[1] in BLOCK:
                text = text.rstrip()
            e = ("text", text)
        out.append(e)
    return out


def _plots(scripts: list[str]) -> tuple[list, str]:
    """The ``Plotly.newPlot`` arguments of every chart, and the hash of plotly.js."""
    plots, bundle = [], ""
    decoder = json.JSONDecoder()
    for s in scripts:
        if "* plotly.js v" in s:
            bundle = hashlib.sha256(s.encode()).hexdigest()
            continue
        for m in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', s):
            pos, args = m.end(), []
            for _ in range(3):
                value, pos = decoder.raw_decode(s, pos)
                args.append(value)
                pos = s.index(",", pos) + 1 if len(args) < 3 else pos
                while s[pos] in " \n":
                    pos += 1
            plots.append((m.group(1), args))
    return plots, bundle


def parse(path: Path) -> dict:
    """The normalised view of one pack."""
    p = _Events()
    p.feed(path.read_text(encoding="utf-8"))
    css = re.sub(r"/\*.*?\*/", "", "".join(p.styles), flags=re.S)
    plots, bundle = _plots(p.scripts)
    events = _visible(p.events)
    return {
        "events": events,
        "text": [e[1] for e in events if e[0] == "text" and e[1].strip()],
        "values": [dict(e[2]).get("data-value") for e in events if e[0] == "start"],
        "css": re.sub(r"\s+", "", css),
        "plots": plots,
        "plotlyjs": bundle,
    }


def compare(old: Path, new: Path) -> list[str]:
    """The differences between two packs (empty when they show the same)."""
    a, b = parse(old), parse(new)
    problems = []
    if a["text"] != b["text"]:
        diff = difflib.unified_diff(a["text"], b["text"], "old", "new", n=1, lineterm="")
        problems.append("visible text differs:\n" + "\n".join(list(diff)[:60]))
    if a["events"] != b["events"]:
        sm = difflib.SequenceMatcher(a=a["events"], b=b["events"], autojunk=False)
        ops = [op for op in sm.get_opcodes() if op[0] != "equal"][:8]
        lines = [
            f"{op}: {a['events'][op[1] : op[2]][:3]} -> {b['events'][op[3] : op[4]][:3]}"
            for op in ops
        ]
        problems.append("tags/attributes differ:\n" + "\n".join(lines))
    if a["css"] != b["css"]:
        problems.append("CSS differs")
    if a["plotlyjs"] != b["plotlyjs"]:
        problems.append("plotly.js differs")
    if [p[0] for p in a["plots"]] != [p[0] for p in b["plots"]]:
        problems.append(
            f"charts differ: {[p[0] for p in a['plots']]} vs {[p[0] for p in b['plots']]}"
        )
    else:
        for (div, args_a), (_, args_b) in zip(a["plots"], b["plots"], strict=True):
            if args_a != args_b:
                problems.append(f"chart {div}: data/layout/config differ")
    return problems


def main() -> int:
    """Compare two executive pack HTML files and print what differs; the exit code."""
    if len(sys.argv) != 3:
        sys.exit("usage: python scripts/compare_packs.py OLD.html NEW.html")
    old, new = Path(sys.argv[1]), Path(sys.argv[2])
    problems = compare(old, new)
    a = parse(old)
    facts = (
        f"{len(a['text'])} text nodes, {len(a['events'])} tags+texts, "
        f"{sum(v is not None for v in a['values'])} data-values, {len(a['plots'])} charts"
    )
    if problems:
        print(f"DIFFERENT ({facts} in {old.name}):")
        for p in problems:
            print(" -", p)
        return 1
    print(f"same content: {facts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
