"""The README, docs, job docstrings and config headers point at things that exist (issue 19, item 6):

- a command run on this machine with a local config uses the project's venv (``.venv/bin/python``): the
  system ``python`` has no synpo. Cluster commands (``ray job submit ... -- python``, the image's) are exempt;
- paths under ``runs/demo/`` are ones the demo writes; markdown links and named repository files exist;
- nothing points at files outside the repository (``FIELD_NOTES``, ``../shared``);
- the rules judge's default margin is the one the README gives it.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TEXTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "jobs").rglob("*.py")),
         *sorted((REPO / "jobs" / "configs").rglob("*.yaml")), *sorted((REPO / "infra").rglob("*.py")), *sorted((REPO / "bench").glob("*.py")), *sorted((REPO / "serve").glob("*.py"))]  # fmt: skip
BARE_LOCAL_COMMAND = re.compile(r"(?<![\w/.-])(?<!-- )python (?:jobs|infra|bench|serve)/\S+")
# what `make demo` writes (its recipe's $(DEMO)/... paths), and the README's vLLM variant's output folder
DEMO_OUTPUTS = tuple(sorted({f"runs/demo/{name}" for name in re.findall(r"\$\(DEMO\)/([\w.-]+)", (REPO / "Makefile").read_text())} | {"runs/demo/generated-vllm"}))


def lines():
    for path in TEXTS:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            yield path.relative_to(REPO), number, line


def test_local_commands_use_the_projects_venv():
    bare = [f"{path}:{number}: {line.strip()}" for path, number, line in lines()
            if BARE_LOCAL_COMMAND.search(line) and ("_local.yaml" in line or "runs/demo" in line or re.search(r"python (infra|bench|serve)/", line))]  # fmt: skip
    assert not bare, "\n".join(bare)


def test_demo_paths_are_ones_the_demo_writes_and_no_file_outside_the_repository_is_named():
    wrong = [f"{path}:{number}: {line.strip()}" for path, number, line in lines()
             for match in re.finditer(r"runs/demo/[\w./-]+", line) if not match.group().startswith(DEMO_OUTPUTS)]  # fmt: skip
    outside = [f"{path}:{number}" for path, number, line in lines() if "FIELD_NOTES" in line or "../shared" in line]
    assert not wrong and not outside, "\n".join(wrong + outside)


def test_markdown_links_and_named_repository_files_exist():
    missing = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = path.read_text()
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if not target.startswith(("http://", "https://", "mailto:")) and not (path.parent / target).exists():
                missing.append(f"{path.relative_to(REPO)} -> {target}")
        for named in re.findall(r"`((?:docs|infra|jobs|bench|serve)/[\w./-]+\.(?:md|py|yaml|sh))`", text):
            if not (REPO / named).exists():
                missing.append(f"{path.relative_to(REPO)} names {named}")
    assert not missing, "\n".join(missing)


def test_the_rules_judge_margin_is_the_readmes():
    rules = yaml.safe_load((REPO / "jobs/configs/judge_rules.yaml").read_text())
    local = yaml.safe_load((REPO / "jobs/configs/pairs_local.yaml").read_text())
    assert rules["backend"] == local["judge"]["backend"] == "rules"
    assert rules["min_margin"] == local["judge"]["min_margin"] == 2.0
    assert "local config uses 2 because the rules judge" in (REPO / "README.md").read_text()
