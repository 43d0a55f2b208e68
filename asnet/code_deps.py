"""The code each stage runs: the asnet modules a stage of asnet.stage_table.STAGES imports,
as files (the `deps:` of a DVC stage) and as one digest of their normalised source (the
`code` param of a Snakemake rule).

Static, from the modules' ASTs, at the granularity of top-level statements. A job imports
workflow/scripts/stage.py's modules and calls asnet.stage_table.run_rule, which calls its
stage's functions. A module imported counts with what runs on import: its imports, its
classes (methods included) and the statements that bind no name (`if __name__ ...:`); a
definition (function, constant) counts when something counted reads its name, directly, as `module.name`,
or through `from module import name`; a function's own imports (function-local) count
with it. The table of stages (STAGES) stands for the one row of the stage. So a stage
depends on the modules it can import when it runs, and its digest on the definitions it can
reach: editing `table6` in asnet/stages.py leaves the train rule's digest alone. A string
"asnet.x:name" (a function named for a worker process) or "asnet.x" (a module run with -m)
counts as that import; other imports by computed name (importlib) are not followed.

The digest is of `ast.dump` of each statement: comments, blank lines and formatting are
not in it, so a comment-only edit reruns nothing; a docstring is code here (it is a value).
Parsing every module takes ~0.3 s, so each file's summary is cached by its content hash
in asnet/__pycache__/code_deps.json (no cache when that folder cannot be written).
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from asnet.disk import write_text_atomic

PACKAGE = "asnet"
PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent
CACHE = Path(PACKAGE) / "__pycache__" / "code_deps.json"  # under the root
# What a job runs before its stage's function: the modules workflow/scripts/stage.py imports,
# and the functions of asnet.stage_table that dispatch the job.
JOB_ENTRY = {"asnet.cli": ("EXPECTED_ERRORS", "error_line"), "asnet.config": None, "asnet.progress": None,
             "asnet.stage_table": ("run_rule", "rule_inputs", "stage_of_rule")}
# The statement holding the stage rows (STAGES): it stands for the one row of the stage.
ROW_CALL = "Stage"
_CACHE_VERSION = 2
_NAMED = re.compile(r"^asnet(\.\w+)*(:\w+)?$")


# --------------------------------------------------------------------------------------
# One file's summary: per top-level statement, the names it binds and reads, the asnet
# imports anywhere inside it, and the digest of its normalised source
# --------------------------------------------------------------------------------------


@cache
def module_file(module: str, root: Path = ROOT) -> Path | None:
    """The file of an asnet module under `root` (`asnet.train.loop` -> asnet/train/loop.py, a
    package -> its __init__.py), None when there is none."""
    parts = module.split(".")
    if parts[0] != PACKAGE or not all(p.isidentifier() for p in parts):
        return None
    base = root.joinpath(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _digest(node: ast.AST) -> str:
    return hashlib.sha1(ast.dump(node).encode()).hexdigest()


def _resolve_from(module: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_pkg else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(tree: ast.AST, module: str, is_pkg: bool) -> tuple[list[list[Any]], dict[str, list[Any]]]:
    """The asnet imports anywhere in `tree` ([module, name or None] pairs: `from asnet.x import y`
    gives ["asnet.x", "y"]), and the names its top-level imports bind ({name: [module, name]})."""
    found: list[list[Any]] = []
    binds: dict[str, list[Any]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    found.append([alias.name, None])
                    if node is tree:
                        bound = alias.asname or alias.name.split(".")[0]
                        binds[bound] = [alias.name if alias.asname else bound, None]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve_from(module, is_pkg, node)
            if source.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                found.append([source, alias.name])
                if node is tree:
                    binds[alias.asname or alias.name] = [source, alias.name]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _NAMED.match(node.value):
            mod, _, name = node.value.partition(":")
            found.append([mod, name or None])  # a text that names no module file counts for nothing
    return found, binds


def _bound(stmt: ast.stmt) -> list[str]:
    """The module-level names a top-level statement binds (none: it only runs)."""
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [stmt.name]
    targets: list[ast.AST] = []
    if isinstance(stmt, ast.Assign):
        targets = stmt.targets
    elif isinstance(stmt, ast.AnnAssign | ast.AugAssign):
        targets = [stmt.target]
    names = []
    for target in targets:
        names += [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
    return names


def _reads(tree: ast.AST) -> list[str]:
    """Names read inside `tree`, and `name.attr` for attribute reads on a plain name."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            out.add(f"{node.value.id}.{node.attr}")
    return sorted(out)


def _part(node: ast.AST, module: str, is_pkg: bool) -> dict[str, Any]:
    imports, binds = _imports(node, module, is_pkg)
    return {"reads": _reads(node), "imports": imports, "binds": binds, "digest": _digest(node)}


def _rows(stmt: ast.stmt, module: str, is_pkg: bool) -> dict[str, dict[str, Any]]:
    """`Stage("<command>", ...)` calls inside a statement, by command."""
    rows = {}
    for node in ast.walk(stmt):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == ROW_CALL
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            rows[node.args[0].value] = _part(node, module, is_pkg)
    return rows


def summarise(path: Path, module: str) -> dict[str, Any]:
    """The summary of one module file (uncached): its top-level statements' parts."""
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    stmts = []
    for stmt in tree.body:
        part = _part(stmt, module, is_pkg)
        part["bound"] = sorted(set(_bound(stmt)) | set(part["binds"]))
        # A class body runs on import (its methods when called): it counts with its module.
        part["is_class"] = isinstance(stmt, ast.ClassDef)
        part["rows"] = _rows(stmt, module, is_pkg)
        stmts.append(part)
    return {"stmts": stmts}


class _Summaries:
    """Summaries of the package's files, cached on disk by content hash."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache_file = root / CACHE
        self.cache: dict[str, Any] = {}
        self.dirty = False
        try:
            data = json.loads(self.cache_file.read_text())
            if data.get("version") == _CACHE_VERSION:
                self.cache = data["files"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
        self.loaded: dict[str, dict[str, Any]] = {}

    def get(self, module: str) -> dict[str, Any] | None:
        if module in self.loaded:
            return self.loaded[module]
        path = module_file(module, self.root)
        if path is None:
            return None
        text = path.read_bytes()
        sha = hashlib.sha1(text).hexdigest()
        rel = path.relative_to(self.root).as_posix()
        hit = self.cache.get(rel)
        if not hit or hit.get("sha") != sha:
            hit = {"sha": sha, "summary": summarise(path, module)}
            self.cache[rel] = hit
            self.dirty = True
        stmts = hit["summary"]["stmts"]
        by_name: dict[str, list[int]] = {}
        for i, stmt in enumerate(stmts):
            for name in stmt["bound"]:
                by_name.setdefault(name, []).append(i)
        binds = {k: v for stmt in stmts for k, v in stmt["binds"].items()}
        summary = {"stmts": stmts, "file": rel, "sha": sha, "by_name": by_name, "binds": binds}
        self.loaded[module] = summary
        return summary

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            write_text_atomic(self.cache_file, json.dumps({"version": _CACHE_VERSION, "files": self.cache}))
            self.dirty = False
        except OSError:
            pass  # a read-only install: parse again next time


# --------------------------------------------------------------------------------------
# The closure of a stage
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageCode:
    """What a stage runs: its modules' files (sorted, relative to the repository) and the
    digest of the parts of them it reaches."""

    files: tuple[str, ...]
    digest: str
    # per file, the module-level names whose definitions the stage reaches
    defs: dict[str, tuple[str, ...]]


class _Closure:
    def __init__(self, summaries: _Summaries, command: str | None) -> None:
        self.s = summaries
        self.command = command
        self.parts: dict[str, set[int]] = {}  # module -> indexes of its reached top-level statements
        self.row: str | None = None  # the digest of the stage's row, once reached
        self.todo: list[tuple[str, str | None]] = []
        self.seen: set[tuple[str, str | None]] = set()

    # A module is imported (its parent packages run first), and `name` of it is read.
    def add_module(self, module: str, name: str | None = None) -> None:
        parts = module.split(".")
        for i in range(1, len(parts)):
            self.todo.append((".".join(parts[:i]), None))
        self.todo.append((module, name))
        if name is not None and module_file(f"{module}.{name}", self.s.root) is not None:
            self.todo.append((f"{module}.{name}", None))

    def run(self) -> None:
        while self.todo:
            item = self.todo.pop()
            if item in self.seen:
                continue
            self.seen.add(item)
            module, name = item
            summary = self.s.get(module)
            if summary is None:
                continue
            if module not in self.parts:
                self.parts[module] = set()
                # On import: its imports, its classes and the statements that bind no name.
                for i, stmt in enumerate(summary["stmts"]):
                    if not stmt["rows"] and (not stmt["bound"] or stmt["binds"] or stmt["is_class"]):
                        self.reach(module, summary, i)
            if name is None:
                continue
            for i in summary["by_name"].get(name, ()):
                self.reach(module, summary, i)
            if name not in summary["by_name"] and name != "__getattr__":
                self.todo.append((module, "__getattr__"))  # a module's __getattr__ makes the others

    def reach(self, module: str, summary: dict[str, Any], index: int) -> None:
        stmt = summary["stmts"][index]
        if stmt["rows"]:  # the row table: only this stage's row
            if self.command in stmt["rows"] and self.row is None:
                self.row = stmt["rows"][self.command]["digest"]
                self.follow(module, summary, stmt["rows"][self.command])
            return
        if index in self.parts[module]:
            return
        self.parts[module].add(index)
        self.follow(module, summary, stmt)

    def follow(self, module: str, summary: dict[str, Any], part: dict[str, Any]) -> None:
        binds = summary["binds"]
        for mod, imported in part["imports"]:
            self.add_module(mod, imported)
        for read in part["reads"]:
            head, _, attr = read.partition(".")
            if head in binds:
                mod, imported = binds[head]
                target = f"{mod}.{imported}" if imported and module_file(f"{mod}.{imported}", self.s.root) else None
                if target:  # `from asnet import stages`: stages.<attr> is a name of that module
                    self.add_module(target, attr or None)
                elif imported is None:  # `import asnet.x`: asnet.x.<attr>
                    self.add_module(mod, attr or None)
                else:
                    self.add_module(mod, imported)
            elif not attr:
                self.todo.append((module, head))

    def result(self) -> StageCode:
        files, defs = set(), {}
        h = hashlib.sha1()
        for module in sorted(self.parts):
            summary = self.s.get(module)
            if summary is None:
                continue
            files.add(summary["file"])
            reached = sorted(self.parts[module])
            defs[summary["file"]] = tuple(sorted({n for i in reached for n in summary["stmts"][i]["bound"]}))
            digests = [summary["stmts"][i]["digest"] for i in reached]
            if any(self.command in s["rows"] for s in summary["stmts"]):
                digests.append(self.row or "")
            h.update(summary["file"].encode() + b"\0" + "\n".join(digests).encode() + b"\0")
        return StageCode(tuple(sorted(files)), h.hexdigest(), defs)


# One per process and root: a Snakefile parse reads each file once.
_SUMMARIES: dict[Path, _Summaries] = {}


def closure(entry: dict[str, Iterable[str] | None], command: str | None = None, root: Path = ROOT) -> StageCode:
    """The code reached from `entry` ({module: names in it, or None for the module itself}) in
    the package under `root`; `command`: the stage whose row of STAGES counts."""
    if root not in _SUMMARIES:
        _SUMMARIES[root] = _Summaries(root)
    summaries = _SUMMARIES[root]
    c = _Closure(summaries, command)
    for module, names in entry.items():
        c.add_module(module)
        for name in names or ():
            c.add_module(module, name)
    c.run()
    summaries.save()
    return c.result()


def forget() -> None:
    """Drop what this process has read (files edited since are read again)."""
    _SUMMARIES.clear()
    stage_code.cache_clear()


@cache
def stage_code(command: str, root: Path = ROOT) -> StageCode:
    """The code a job of stage `command` runs: workflow/scripts/stage.py's imports, the
    dispatch in asnet.stage_table, the stage's row and everything its functions reach."""
    return closure(JOB_ENTRY, command, root)


def rule_code(rule: str) -> str:
    """The `code` param of a Snakemake job rule: the digest of its stage's code."""
    from asnet.stage_table import stage_of_rule

    return stage_code(stage_of_rule(rule).command).digest


def workflow_imports(files: Iterable[Path]) -> dict[str, tuple[str, ...]]:
    """What Snakefiles import from the package (their `from asnet... import ...` lines, each a
    Python statement of one line), as a `closure` entry: {module: names}."""
    out: dict[str, set[str]] = {}
    for path in files:
        for line in Path(path).read_text().splitlines():
            text = line.strip()
            if text.startswith((f"from {PACKAGE}", f"import {PACKAGE}")):
                for mod, name in _imports(ast.parse(text).body[0], "", False)[0]:
                    out.setdefault(mod, set()).update([name] if name else [])
    return {m: tuple(sorted(n)) for m, n in out.items()}
