"""A tiny report document: headings, paragraphs, tables, figures and pre-rendered HTML
fragments, rendered to Markdown and to a self-contained HTML page (figures embedded as base64).
Shared by every stage that writes a report (evaluate, ares, the demo)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Document:
    title: str
    blocks: list[tuple] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", level, text))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("paragraph", text))

    def table(self, header: list[str], rows: list[list]) -> None:
        self.blocks.append(("table", header, [[_cell(v) for v in r] for r in rows]))

    def figure(self, path: Path, caption: str) -> None:
        self.blocks.append(("figure", Path(path), caption))

    def links(self, intro: str, targets: list[tuple[str, str]]) -> None:
        """A sentence of links: ``intro`` then each (text, relative href) — detail reports, pages."""
        self.blocks.append(("links", intro, list(targets)))

    def fragment(self, html_text: str, markdown: str) -> None:
        """A piece of HTML written as is (e.g. coloured cells), with its Markdown rendering."""
        self.blocks.append(("fragment", html_text, markdown))

    def to_markdown(self, base: Path) -> str:
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            if b[0] == "heading":
                out += ["#" * b[1] + " " + b[2], ""]
            elif b[0] == "paragraph":
                out += [b[1], ""]
            elif b[0] == "table":
                out += ["| " + " | ".join(b[1]) + " |", "|" + "---|" * len(b[1])]
                out += ["| " + " | ".join(r) + " |" for r in b[2]]
                out.append("")
            elif b[0] == "fragment":
                out += [b[2], ""]
            elif b[0] == "links":
                out += [b[1] + " " + "; ".join(f"[{text}]({href})" for text, href in b[2]) + ".", ""]
            else:
                out += [f"![{b[2]}]({b[1].relative_to(base).as_posix()})", f"*{b[2]}*", ""]
        return "\n".join(out)

    def to_html(self) -> str:
        parts = [
            "<!DOCTYPE html><html><head><meta charset='utf-8'>",
            f"<title>{html.escape(self.title)}</title>",
            "<style>body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}"
            "table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
            "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}figure{margin:1.5em 0}"
            "figcaption{font-style:italic;color:#555}img{max-width:100%}</style></head><body>",
            f"<h1>{html.escape(self.title)}</h1>",
        ]
        for b in self.blocks:
            if b[0] == "heading":
                parts.append(f"<h{b[1]}>{html.escape(b[2])}</h{b[1]}>")
            elif b[0] == "paragraph":
                parts.append(f"<p>{html.escape(b[1])}</p>")
            elif b[0] == "table":
                head = "".join(f"<th>{html.escape(h)}</th>" for h in b[1])
                body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in b[2])
                parts.append(f"<table><tr>{head}</tr>{body}</table>")
            elif b[0] == "fragment":
                parts.append(b[1])
            elif b[0] == "links":
                anchors = "; ".join(f"<a href='{html.escape(href, quote=True)}'>{html.escape(text)}</a>" for text, href in b[2])
                parts.append(f"<p>{html.escape(b[1])} {anchors}.</p>")
            else:
                data = base64.b64encode(b[1].read_bytes()).decode()
                parts.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(b[2])}'><figcaption>{html.escape(b[2])}</figcaption></figure>")
        parts.append("</body></html>")
        return "\n".join(parts)


def _cell(v) -> str:
    if isinstance(v, float):
        if v != v:
            return "—"  # undefined (e.g. no positive prediction): shown as absent, never as a number
        return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return str(v)
