"""The `borealis` command as a user runs it: output, exit status, errors on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def borealis(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "borealis_local.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_list_table_names_every_model():
    result = borealis("list")
    assert result.returncode == 0, result.stderr
    for name in ("borealis-270m", "borealis-open-27b", "NB-License", "Gemma Terms of Use"):
        assert name in result.stdout


def test_list_json_has_every_file_name():
    result = borealis("list", "--json")
    models = json.loads(result.stdout)
    assert len(models) == 10
    four_b = next(m for m in models if m["name"] == "borealis-4b")
    assert four_b["files"]["Q4_K_M"] == "borealis-4b-Q4_K_M.gguf"
    assert four_b["gguf_repo"] == "NbAiLab/borealis-4b-gguf"
    assert len(four_b["license"]["restrictions"]) == 2
    assert four_b["shape"]["layers"] == 34


def test_modelfile_prints_one_that_lints_clean(tmp_path):
    result = borealis("modelfile", "12b", "--variant", "open", "--quant", "Q6_K")
    assert result.returncode == 0, result.stderr
    assert "FROM huggingface.co/NbAiLab/borealis-open-12b-gguf:Q6_K\n" in result.stdout
    path = tmp_path / "x.Modelfile"
    path.write_text(result.stdout)
    lint = borealis("lint", "--strict", str(path))
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_modelfile_from_a_real_gguf(gemma_gguf, tmp_path):
    result = borealis("modelfile", "270m", "--variant", "open", "--from", str(gemma_gguf))
    assert result.returncode == 0, result.stderr
    assert f"FROM {gemma_gguf.resolve()}\n" in result.stdout
    path = tmp_path / "local.Modelfile"
    path.write_text(result.stdout)
    assert borealis("lint", "--strict", str(path)).returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["modelfile", "7b"], "unknown size '7b'"),
        (["modelfile", "4b", "--quant", "Q4_0"], "unknown quantisation"),
        (["modelfile", "4b", "--from", "/nonexistent/borealis.gguf"], "no such file"),
        (["modelfile", "4b", "--from", "README.md"], "is not a GGUF file"),
        (["modelfile", "4b", "--num-ctx", "999999"], "context length"),
        (["modelfile"], "give a SIZE"),
        (["modelfile", "4b", "--write"], "give no SIZE"),
    ],
)
def test_errors_are_one_line_on_stderr_with_exit_1(args, message):
    result = borealis(*args, cwd=REPO)
    assert result.returncode == 1
    assert result.stdout == ""
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_write_and_check(tmp_path):
    target = tmp_path / "out"
    written = borealis("modelfile", "--write", "--dir", str(target))
    assert written.returncode == 0 and "13 files" in written.stdout
    assert borealis("modelfile", "--check", "--dir", str(target)).returncode == 0
    (target / "templates" / "borealis.jinja").write_text("edited by hand")
    check = borealis("modelfile", "--check", "--dir", str(target))
    assert check.returncode == 1 and "borealis.jinja: differs" in check.stderr


def test_lint_reports_file_and_line_and_fails(tmp_path):
    bad = tmp_path / "bad.Modelfile"
    bad.write_text('FROM hf.co/x/y\nPARAMETER temperature hot\nPARAMETER stop "<end_of_turn>"\n')
    result = borealis("lint", str(bad))
    assert result.returncode == 1
    assert f"{bad}:2: error:" in result.stdout


def test_lint_warnings_pass_unless_strict(tmp_path):
    plain = tmp_path / "plain.Modelfile"
    plain.write_text("FROM hf.co/NbAiLab/borealis-4b-gguf\n")
    loose = borealis("lint", str(plain))
    assert loose.returncode == 0 and "warning" in loose.stdout
    assert borealis("lint", "--strict", str(plain)).returncode == 1


def test_help_describes_every_command():
    result = borealis("--help")
    assert result.returncode == 0
    for command in ("list", "modelfile", "lint"):
        assert command in result.stdout


@pytest.mark.slow
def test_chat_from_a_pipe_answers_each_line_once(gemma_gguf):
    result = subprocess.run(
        [sys.executable, "-m", "borealis_local.cli", "chat", str(gemma_gguf),
         "--max-tokens", "3", "--seed", "1", "--num-ctx", "512"],
        input="Hei\n\nHva heter du?\n",
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    stats = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert len(stats) == 2  # the empty line is not a question
    assert all(line.startswith("[3 tokens, ") and "tokens/s" in line for line in stats)
    assert result.stdout.count("\n") >= 2
    # llama.cpp's own log (e.g. "llama_kv_cache_iswa: using full-size SWA cache") is
    # kept out of the terminal: the figures are all stderr says.
    assert result.stderr.splitlines() == stats


@pytest.mark.slow
def test_chat_verbose_shows_llama_cpps_log(gemma_gguf):
    result = subprocess.run(
        [sys.executable, "-m", "borealis_local.cli", "chat", str(gemma_gguf), "--verbose",
         "--max-tokens", "1", "--num-ctx", "512"],
        input="Hei\n", capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "llama_model_loader" in result.stderr and "llama_context" in result.stderr


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("/nonexistent/model.gguf", "no such model file"),
        ("openai:m@http://127.0.0.1:9/v1", "no OpenAI-compatible server answers"),
        ("openai:m", "openai:MODEL@BASE_URL"),
    ],
)
def test_chat_errors_are_one_line_and_exit_1(model, message):
    result = subprocess.run(
        [sys.executable, "-m", "borealis_local.cli", "chat", model],
        input="Hei\n", capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert message in result.stderr and result.stderr.strip().count("\n") == 0
