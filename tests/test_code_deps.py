"""Code dependencies of the stages (asnet.code_deps): what each stage imports, checked against
what really runs, and the reruns they make: a real edit of a stage's code reruns its
Snakemake rule, an edit of a comment or of another stage's code does not."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asnet import code_deps
from asnet.stage_table import STAGES

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
REAL_EDIT = "\nassert True  # runs on import: code, not a comment\n"
COMMENT_EDIT = "\n# a comment only\n"


def _copy_package(root: Path, *extra: str) -> Path:
    for rel in ("asnet", *extra):
        src = REPO / rel
        if src.is_dir():
            shutil.copytree(src, root / rel, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, root / rel)
    return root


def _append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def test_each_stage_depends_on_its_own_modules_only() -> None:
    files = {cmd: set(code_deps.stage_code(cmd).files) for cmd in STAGES}
    assert "asnet/train/loop.py" in files["train"] and "asnet/report/tables.py" not in files["train"]
    assert "asnet/report/tables.py" in files["table6"] and "asnet/train/loop.py" not in files["table6"]
    assert "asnet/data/synthetic.py" in files["prepare"] and "asnet/train/evaluate.py" not in files["prepare"]
    assert all(len(f) < len(list((REPO / "asnet").rglob("*.py"))) for f in files.values())
    for listed in files.values():
        assert all((REPO / f).is_file() for f in listed)


def test_digest_follows_real_edits_of_reached_code_only(tmp_path: Path) -> None:
    root = _copy_package(tmp_path)

    def digests() -> dict[str, str]:
        code_deps.forget()
        return {cmd: code_deps.stage_code(cmd, root).digest for cmd in ("train", "evaluate", "table6", "prepare")}

    try:
        base = digests()
        _append(root / "asnet/train/loop.py", COMMENT_EDIT)
        assert digests() == base  # comments are not in the normalised source
        _append(root / "asnet/report/tables.py", REAL_EDIT)
        after = digests()
        assert after["table6"] != base["table6"] and after["train"] == base["train"] == digests()["train"]
        _append(root / "asnet/train/loop.py", REAL_EDIT)
        changed = {cmd for cmd, d in digests().items() if d != after[cmd]}
        assert {"train", "evaluate"} <= changed and "prepare" not in changed and "table6" not in changed
        # Another stage's function in asnet/stages.py is not this stage's code.
        stages_py = root / "asnet/stages.py"
        text = stages_py.read_text()
        head = '    """Table 6 with the cost of each model (params, forward GMACs per view)."""\n'
        assert head in text
        before = digests()
        stages_py.write_text(text.replace(head, head + "    assert True\n", 1))
        last = digests()
        assert last["table6"] != before["table6"]
        assert {k: last[k] for k in ("train", "evaluate", "prepare")} == {
            k: before[k] for k in ("train", "evaluate", "prepare")}
    finally:
        code_deps.forget()


def test_what_a_job_imports_before_its_stage_runs_is_listed() -> None:
    """The modules workflow/scripts/stage.py imports, as a fresh process really loads them."""
    code = ("import json, sys\n"
            "from asnet.cli import EXPECTED_ERRORS, error_line\n"
            "from asnet.config import from_dict, resolve\n"
            "from asnet.progress import console_handler, job_label\n"
            "from asnet.stage_table import run_rule, stage_of_rule\n"
            "print(json.dumps(sorted(m.__file__ for n, m in sys.modules.items()"
            " if n.split('.')[0] == 'asnet' and getattr(m, '__file__', None))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    loaded = {Path(f).resolve().relative_to(REPO).as_posix() for f in json.loads(out)}
    assert "asnet/stage_table.py" in loaded
    for cmd in STAGES:
        assert loaded <= set(code_deps.stage_code(cmd).files), (cmd, loaded - set(code_deps.stage_code(cmd).files))


# Run in a fresh process as a Snakemake job runs it (run_rule), under a profiler that records
# every asnet function that runs and every asnet module loaded.
TRACED_RUN = """
import json, sys, threading
calls = set()
def tracer(frame, event, arg):
    if event == "call":
        code = frame.f_code
        if "/asnet/" in code.co_filename:
            calls.add((code.co_filename, code.co_qualname))
sys.setprofile(tracer)
threading.setprofile(tracer)
from asnet.config import load_config
from asnet.stage_table import run_rule
rule, wildcards, output = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
run_rule(rule, load_config(overrides=["preset=tiny"]), wildcards, [output], None, {}, threads=1)
sys.setprofile(None)
mods = sorted(m.__file__ for n, m in list(sys.modules.items()) if n.split(".")[0] == "asnet" and getattr(m, "__file__", None))
print("TRACE" + json.dumps({"calls": sorted(calls), "modules": mods}))
"""


def _traced(rule: str, wildcards: dict[str, str], output: str, cwd: Path) -> tuple[set[str], set[tuple[str, str]]]:
    proc = subprocess.run([sys.executable, "-c", TRACED_RUN, rule, json.dumps(wildcards), output], cwd=cwd,
                          capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout.split("TRACE", 1)[1])

    def rel(f: str) -> str:
        return Path(f).resolve().relative_to(REPO).as_posix()

    return {rel(f) for f in data["modules"]}, {(rel(f), q) for f, q in data["calls"]}


@pytest.mark.slow
def test_a_real_stage_run_stays_inside_its_listed_code(tiny_workdir: Path, tmp_path: Path) -> None:
    """Train and evaluate a tiny run: every asnet module loaded is listed, and every function
    that ran is in a top-level definition the stage's closure reaches."""
    work = tmp_path / "work"
    shutil.copytree(tiny_workdir, work)
    wildcards = {"dataset": "synthetic_tiny", "split": "1", "variant": "single"}
    # Importing asnet.stage_table builds every row of STAGES; only the stage's own row is its code.
    table_rows = {("asnet/stage_table.py", name) for cmd in STAGES
                  for name in code_deps.stage_code(cmd).defs["asnet/stage_table.py"]}
    for rule, command, output in (
            ("train", "train", "results/checkpoints/synthetic_tiny/split1/single/model.pt"),
            ("evaluate", "evaluate", "results/eval/synthetic_tiny/split1/single/metrics.json")):
        modules, calls = _traced(rule, wildcards, output, work)
        code = code_deps.stage_code(command)
        assert modules <= set(code.files), (rule, modules - set(code.files))
        missed = set()
        for file, qualname in calls:
            top = qualname.split(".")[0]
            if not top.startswith("<") and top not in code.defs.get(file, ()) and (file, top) not in table_rows:
                missed.add((file, qualname))
        assert not missed, (rule, sorted(missed))


def _smk(copy: Path, work: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(SNAKEMAKE + ["--snakefile", str(copy / "Snakefile"), "--directory", str(work), "--cores", "1",
                                       *args, "--config", "preset=tiny"], cwd=copy, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(copy)})


@pytest.mark.slow
def test_snakemake_reruns_a_rule_after_a_real_edit_of_its_code_only(tmp_path: Path) -> None:
    copy = _copy_package(tmp_path / "repo", "Snakefile", "workflow", "config")
    work = tmp_path / "work"
    target = "results/checkpoints/synthetic_tiny/split1/single/model.pt"
    run = _smk(copy, work, target)
    assert run.returncode == 0, run.stderr[-3000:]
    # The rule's log: one line per record, no tqdm redraws; the epochs are there.
    log = (work / "results/logs/synthetic_tiny/split1/single/train.log").read_text()
    assert "\r" not in log and "epoch 1: {" in log and "%|" in log, log[-2000:]

    def planned() -> str:
        dry = _smk(copy, work, "-n", target)
        assert dry.returncode == 0, dry.stderr[-3000:]
        return dry.stdout + dry.stderr

    assert "Nothing to be done" in planned()
    _append(copy / "asnet/train/loop.py", COMMENT_EDIT)
    _append(copy / "asnet/report/tables.py", REAL_EDIT)
    assert "Nothing to be done" in planned()
    _append(copy / "asnet/train/loop.py", REAL_EDIT)
    out = planned()
    assert "Params have changed" in out and "train" in out[out.index("Job stats:"):], out
    jobs = out[out.index("Job stats:"):]
    assert "extract" not in jobs and "prepare" not in jobs, jobs
