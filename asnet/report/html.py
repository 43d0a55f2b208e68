"""Self-contained HTML pages of the tables and the audit, for Snakemake's report.

Snakemake's HTML report shows images, PDFs and HTML inline and offers every other file
(.csv, .tex, .md) only as a download; these pages are what it shows for a table: the
table's own LaTeX caption (so e.g. Table 6's note on splits not fully evaluated is read
with it) above the rows of its .csv, unedited. The audit's markdown becomes HTML the same
way. No network, no scripts: each page is one file that opens anywhere.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd

from asnet.paths import REPORT_ROOT

DASH = "\u2013"  # an empty cell: no value (e.g. no paper number for the synthetic set)
STYLE = """
body { font-family: sans-serif; font-size: 14px; margin: 1em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #bbb; padding: 3px 7px; }
th { background: #eee; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
p.caption { max-width: 60em; }
"""

# LaTeX in our captions (asnet/report/tables.py and friends): escapes and a few macros.
_LATEX = [(r"\%", "%"), (r"\_", "_"), (r"\&", "&"), (r"\#", "#"), ("$\\pm$", "\u00b1"), (r"\pm", "\u00b1"),
          ("$\\times$", "\u00d7"), (r"\times", "\u00d7"), ("~", " "), ("--", "\u2013")]


# Every page the report renders: name -> (title, source under results/, has a .tex beside it).
PAGES: dict[str, tuple[str, str, bool]] = {
    "table6": ("Table 6: top-1 over the test splits", "table6.csv", True),
    "table1": ("Table 1: saliency-stream input (split 1)", "table1.csv", True),
    "table2": ("Table 2: backbones (split 1)", "table2.csv", True),
    "table3": ("Table 3: fusion of the two streams (split 1)", "table3.csv", True),
    "table4": ("Table 4: SPA actions x training steps (split 1)", "table4.csv", True),
    "table5": ("Table 5: frozen features + linear SVM", "table5.csv", True),
    "probes": ("Learnability probes of the synthetic set", "probes.csv", True),
    "spa_cost": ("SPA's cost (not in the paper)", "spa_cost.csv", True),
    "localisation": ("SPA's localisation against its bounds (not in the paper)", "localisation.csv", True),
    "anchor_check": ("Anchor check: Hara et al.'s published models through our data path", "anchor_check.csv", True),
    "audit": ("Audit of the paper's claims", "audit.md", False),
    "paper_audit": ("The paper's own numbers, audited without data", "paper_audit.md", False),
    "runtime": ("Run times per stage (Snakemake benchmark files)", "runtime.csv", False),
}


def page_source(name: str, results: Path = Path("results")) -> tuple[Path, Path | None]:
    """The file a page renders and its .tex (None when it has none); ValueError for an unknown page."""
    if name not in PAGES:
        raise ValueError(f"unknown report page {name!r}; choose one of {', '.join(PAGES)}")
    _, source, has_tex = PAGES[name]
    src = Path(results) / source
    return src, (src.with_suffix(".tex") if has_tex else None)


def render_page(name: str, out: Path | None = None, results: Path = Path("results")) -> Path:
    """results/report/<name>.html: the page of one table (or of the audit's markdown)."""
    src, tex = page_source(name, results)
    title = PAGES[name][0]
    text = markdown_page(src, title) if src.suffix == ".md" else table_page(src, tex, title)
    return write_page(text, out if out is not None else REPORT_ROOT / f"{name}.html")


def tex_caption(tex: str) -> str:
    """The text of the first \\caption{...} of a LaTeX table (nested braces kept), as plain
    text; "" when there is none."""
    start = tex.find("\\caption{")
    if start < 0:
        return ""
    i = start + len("\\caption{")
    depth, out = 1, []
    while i < len(tex):
        ch = tex[i]
        if ch == "\\" and i + 1 < len(tex):
            out.append(tex[i:i + 2])
            i += 2
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth == 0:
            break
        out.append(ch)
        i += 1
    text = "".join(out)
    for a, b in _LATEX:
        text = text.replace(a, b)
    text = re.sub(r"\\(?:textbf|emph|textit|mathrm)\{([^{}]*)\}", r"\1", text)
    return re.sub(r"[{}$]", "", text).strip()


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>{html.escape(title)}</title>\n"
            f"<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def _cell(value: str) -> str:
    try:
        float(value)
    except ValueError:
        return f"<td>{html.escape(value) or DASH}</td>"
    return f"<td class=\"num\">{html.escape(value)}</td>"


def table_page(csv_path: Path, tex_path: Path | None = None, title: str | None = None) -> str:
    """An HTML page of one table: a heading, the .tex file's caption (when given) and every
    row and column of the .csv as written there (numbers right-aligned, empty cells as a
    dash)."""
    csv_path = Path(csv_path)
    if not csv_path.exists():
        raise FileNotFoundError(f"{csv_path}: table not found; build it first (its Snakemake target or `asnet` command)")
    df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    caption = tex_caption(Path(tex_path).read_text()) if tex_path is not None else ""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = "\n".join("<tr>" + "".join(_cell(v) for v in rec) + "</tr>" for rec in df.itertuples(index=False))
    body = [f"<h2>{html.escape(title or csv_path.stem)}</h2>"]
    if caption:
        body.append(f"<p class=\"caption\">{html.escape(caption)}</p>")
    body.append(f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>")
    body.append(f"<p>From <code>{html.escape(csv_path.as_posix())}</code>"
                + (f" and <code>{html.escape(Path(tex_path).as_posix())}</code>" if tex_path is not None else "")
                + ".</p>")
    return _page(title or csv_path.stem, "\n".join(body))


def markdown_page(md_path: Path, title: str | None = None) -> str:
    """An HTML page of a markdown file (CommonMark with tables), e.g. results/audit.md."""
    from markdown_it import MarkdownIt

    md_path = Path(md_path)
    if not md_path.exists():
        raise FileNotFoundError(f"{md_path}: not found; build it first (its Snakemake target or `asnet` command)")
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(md_path.read_text())
    return _page(title or md_path.stem, body)


def write_page(text: str, out: Path) -> Path:
    """Write an HTML page, creating its folder."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out
