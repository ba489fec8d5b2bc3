"""The QA report page: one self-contained HTML file linking its plots, every text escaped."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass
class Section:
    """One part of the page.

    Attributes
    ----------
    title : str
        The heading.
    image : str or None
        The plot's file name, relative to the page (``histogram.png``), or None.
    notes : list of str
        Paragraphs of plain text (escaped on output).
    table : tuple of (header, rows) or None
        A table: column names, then rows of values (each shown with ``str``, escaped).
    """

    title: str
    image: str | None = None
    notes: list[str] = field(default_factory=list)
    table: tuple[Sequence[str], Sequence[Sequence[object]]] | None = None


_STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
img { max-width: 100%; border: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
td.num { text-align: right; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.1em 1em; }
dt { font-weight: bold; } dd { margin: 0; }
"""


def _cell(value: object) -> str:
    cls = ' class="num"' if isinstance(value, int | float) and not isinstance(value, bool) else ""
    return f"<td{cls}>{html.escape(str(value))}</td>"


def render_page(title: str, facts: Mapping[str, object], sections: Sequence[Section]) -> str:
    """The report's HTML.

    Parameters
    ----------
    title : str
        The page's title and top heading.
    facts : mapping of str to object
        Key facts shown first (map name, order, survey...), as a definition list.
    sections : sequence of Section
        The parts, in order.

    Returns
    -------
    str
        A complete HTML5 document; every given text and file name is escaped.
    """
    esc = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{esc(title)}</title>", f"<style>{_STYLE}</style>", "</head>", "<body>",
           f"<h1>{esc(title)}</h1>", "<dl>"]
    out += [f"<dt>{esc(str(k))}</dt><dd>{esc(str(v))}</dd>" for k, v in facts.items()]
    out.append("</dl>")
    for s in sections:
        out.append(f"<h2>{esc(s.title)}</h2>")
        out += [f"<p>{esc(note)}</p>" for note in s.notes]
        if s.image:
            out.append(f'<p><img src="{esc(s.image, quote=True)}" alt="{esc(s.title)}"></p>')
        if s.table is not None:
            header, rows = s.table
            out.append("<table><tr>" + "".join(f"<th>{esc(str(h))}</th>" for h in header)
                       + "</tr>")
            out += ["<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows]
            out.append("</table>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)
