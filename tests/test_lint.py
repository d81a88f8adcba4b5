"""borealis lint: Ollama's Modelfile grammar (parser/parser.go), its PARAMETER typing
(api.FormatParams with Go's strconv) and the Borealis warnings.

The parser cases mirror ollama/ollama parser/parser_test.go; the strconv cases were
checked against Go's own strconv.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from borealis_local.errors import ModelfileError
from borealis_local.lint import (
    ERR_COMMAND,
    ERR_ROLE,
    MIN_NUM_CTX,
    Instruction,
    Problem,
    go_float32_ok,
    go_parse_bool,
    go_parse_int,
    lint_files,
    lint_modelfile,
    parse_modelfile,
)

REPO = Path(__file__).resolve().parent.parent
BAD = Path(__file__).resolve().parent / "modelfiles_bad"

# A template in the old .System/.Prompt style that folds the system prompt into the
# first user turn, as Gemma 3 expects: no template warning.
FOLDING_TEMPLATE = """<start_of_turn>user
{{ if .System }}{{ .System }}

{{ end }}{{ .Prompt }}<end_of_turn>
<start_of_turn>model
{{ .Response }}<end_of_turn>"""

GOOD = f'''FROM huggingface.co/NbAiLab/borealis-4b-gguf:Q4_K_M
TEMPLATE """{FOLDING_TEMPLATE}"""
PARAMETER stop "<end_of_turn>"
PARAMETER num_ctx 16384
'''


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


STOP_LINE = line_of(GOOD, "PARAMETER stop")  # 8
NUM_CTX_LINE = line_of(GOOD, "PARAMETER num_ctx")  # 9
NEXT_LINE = GOOD.count("\n") + 1  # where with_good's lines start: 10

# Ollama's library gemma3 template (the part that matters): system as its own user turn.
LIBRARY_GEMMA3 = """{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if or (eq .Role "user") (eq .Role "system") }}<start_of_turn>user
{{ .Content }}<end_of_turn>
{{ if $last }}<start_of_turn>model
{{ end }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}{{ if not $last }}<end_of_turn>
{{ end }}
{{- end }}
{{- end }}"""


def commands(text: str) -> list[tuple[str, str]]:
    """Parsed instructions as parser_test.go's Commands: (Name, Args)."""
    out = []
    for ins in parse_modelfile(text):
        if ins.name == "from":
            out.append(("model", ins.args))
        elif ins.name == "parameter":
            out.append((ins.param, ins.args))
        elif ins.name == "message":
            out.append(("message", f"{ins.role}: {ins.args}"))
        else:
            out.append((ins.name, ins.args))
    return out


def syntax_error(text: str) -> ModelfileError:
    with pytest.raises(ModelfileError) as info:
        parse_modelfile(text)
    return info.value


def found(text: str, severity: str | None = None, **kwargs) -> list[tuple[int, str, str]]:
    problems = lint_modelfile(text, **kwargs)
    return [
        (p.line, p.severity, p.message)
        for p in problems
        if severity is None or p.severity == severity
    ]


def with_good(*lines: str) -> str:
    """GOOD plus some lines, from NEXT_LINE on."""
    return GOOD + "".join(line + "\n" for line in lines)


# --- grammar ------------------------------------------------------------------------


def test_parse_file_mirrors_ollama_test_parse_file_file():
    text = '''
FROM model1
ADAPTER adapter1
LICENSE MIT
PARAMETER param1 value1
PARAMETER param2 value2
TEMPLATE """{{ if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>{{ end }}{{ if .Prompt }}<|start_header_id|>user<|end_header_id|>

{{ .Prompt }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>

{{ .Response }}<|eot_id|>"""    
'''  # noqa: W291 (Ollama's test has the trailing spaces too)
    assert commands(text) == [
        ("model", "model1"),
        ("adapter", "adapter1"),
        ("license", "MIT"),
        ("param1", "value1"),
        ("param2", "value2"),
        (
            "template",
            "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}"
            "<|eot_id|>{{ end }}{{ if .Prompt }}<|start_header_id|>user<|end_header_id|>"
            "\n\n{{ .Prompt }}<|eot_id|>{{ end }}<|start_header_id|>assistant"
            "<|end_header_id|>\n\n{{ .Response }}<|eot_id|>",
        ),
    ]


def test_instructions_carry_name_line_param_and_role():
    text = 'from base\n\nParameter num_ctx 8192\nMESSAGE user Hei!\nSYSTEM """a\nb"""\nDRAFT ./d\n'
    assert parse_modelfile(text) == [
        Instruction("from", "base", 1),
        Instruction("parameter", "8192", 3, param="num_ctx"),
        Instruction("message", "Hei!", 4, role="user"),
        Instruction("system", "a\nb", 5),
        Instruction("draft", "./d", 7),
    ]


def test_every_current_instruction_parses():
    names = ["FROM", "LICENSE", "TEMPLATE", "SYSTEM", "ADAPTER", "DRAFT", "RENDERER"]
    names += ["PARSER", "REQUIRES"]
    text = "".join(f"{name} v{i}\n" for i, name in enumerate(names))
    assert [ins.name for ins in parse_modelfile(text)] == [n.lower() for n in names]


def test_trim_space_mirrors_ollama():
    text = 'FROM "     model 1"\nADAPTER      adapter3\nLICENSE "MIT       "\n'
    text += "PARAMETER param1        value1\n"
    text += 'TEMPLATE """   {{ .Prompt }}   """    \n'
    assert commands(text) == [
        ("model", "     model 1"),
        ("adapter", "adapter3"),
        ("license", "MIT       "),
        ("param1", "value1"),
        ("template", "   {{ .Prompt }}   "),
    ]


@pytest.mark.parametrize(
    "text, expected",
    [
        ('FROM "FOO  BAR  "', [("model", "FOO  BAR  ")]),
        ('FROM "FOO BAR"\nPARAMETER param1 value1', [("model", "FOO BAR"), ("param1", "value1")]),
        ("FROM     FOOO BAR    ", [("model", "FOOO BAR")]),
        ("FROM /what/is/the path ", [("model", "/what/is/the path")]),
        ("FROM llama3:7b-instruct-q4_K_M", [("model", "llama3:7b-instruct-q4_K_M")]),
        ("PARAMETER param1 value1\nFROM foo", [("param1", "value1"), ("model", "foo")]),
        (
            "PARAMETER what the \nFROM lemons make lemonade ",
            [("what", "the"), ("model", "lemons make lemonade")],
        ),
    ],
)
def test_from_cases_mirror_ollama(text, expected):
    assert commands(text) == expected


@pytest.mark.parametrize(
    "line, name, value",
    [
        ("num_ctx 1", "num_ctx", "1"),
        ("stop ### User:", "stop", "### User:"),
        ("stop ### User: ", "stop", "### User:"),
        ('stop "### User:"', "stop", "### User:"),
        ('stop "### User: "', "stop", "### User: "),
        ('stop """### User:"""', "stop", "### User:"),
        ('stop """### User:\n"""', "stop", "### User:\n"),
        ("stop <end_of_turn>", "stop", "<end_of_turn>"),
        ("stop </s>", "stop", "</s>"),
    ],
)
def test_parameter_values_mirror_ollama(line, name, value):
    assert commands(f"FROM foo\nPARAMETER {line}\n") == [("model", "foo"), (name, value)]


Q3 = '"""'
# parser_test.go's SYSTEM """''"'""'""'"'''''""'""'""" (no escapes inside)
QUOTES = "''\"'\"\"'\"\"'\"'''''\"\"'\"\"'"


@pytest.mark.parametrize(
    "value, expected",
    [
        ('"""\nThis is a\nmultiline system.\n"""\n\t\t\t', "\nThis is a\nmultiline system.\n"),
        ('"""\nThis is a\nmultiline system."""', "\nThis is a\nmultiline system."),
        ('"""This is a\nmultiline system."""', "This is a\nmultiline system."),
        ('"""This is a multiline system."""', "This is a multiline system."),
        ('"""\nA system with "quotes".\n"""\n', '\nA system with "quotes".\n'),
        ('""""""', ""),
        ('""', ""),
        ('"\'"', "'"),
        (Q3 + QUOTES + Q3, QUOTES),
        ('"two\nlines"', "two\nlines"),  # plain quotes span lines too
        ('"a" and "b"', 'a" and "b'),  # only the outermost pair is cut, no escapes
        ('x "quoted" y', 'x "quoted" y'),  # quotes mid-value are text
        ('say "hi"', 'say "hi"'),  # and so is a closing quote without an opening one
    ],
)
def test_quoted_values_mirror_ollama(value, expected):
    assert commands(f"FROM foo\nSYSTEM {value}") == [("model", "foo"), ("system", expected)]


def test_multiline_template_with_actions_and_quotes_is_exact():
    template = '{{- if .System }}"{{ .System }}"\n\n{{ end }}{{ printf "%q" .Prompt }}\n'
    text = f'FROM foo\nTEMPLATE """{template}"""\nPARAMETER stop "<end_of_turn>"\n'
    assert parse_modelfile(text)[1] == Instruction("template", template, 2)
    assert parse_modelfile(text)[2].line == 6  # TEMPLATE spans lines 2-5


@pytest.mark.parametrize(
    "text, expected",
    [
        ("FROM foo\nMESSAGE system You are a file parser.\n", ["system: You are a file parser."]),
        ("FROM foo\nMESSAGE system You are a file parser.", ["system: You are a file parser."]),
        (
            "FROM foo\nMESSAGE user Hey there!\nMESSAGE assistant Hello!\n",
            ["user: Hey there!", "assistant: Hello!"],
        ),
        ('FROM foo\nMESSAGE system """\nMultiline.\n"""\n', ["system: \nMultiline.\n"]),
    ],
)
def test_messages_mirror_ollama(text, expected):
    assert [args for name, args in commands(text) if name == "message"] == expected


def test_comment_lines_are_skipped_anywhere_an_instruction_could_start():
    text = "# comment\n   # indented comment\nFROM foo # not a comment\n\t\n#last"
    assert commands(text) == [("model", "foo # not a comment")]


def test_comment_after_a_value_is_part_of_it_and_lint_says_so():
    assert commands("FROM gemma3:4b # base model") == [("model", "gemma3:4b # base model")]
    warnings = found(GOOD.replace("Q4_K_M\n", "Q4_K_M # the hub\n", 1), "warning")
    assert len(warnings) == 1
    line, _, message = warnings[0]
    assert line == 1
    assert "contains '#'" in message and "put it on its own line" in message


def test_repeated_stop_lines_accumulate():
    text = 'FROM foo\nPARAMETER stop "<start_of_turn>"\nPARAMETER stop "<end_of_turn>"\n'
    stops = [ins.args for ins in parse_modelfile(text) if ins.param == "stop"]
    assert stops == ["<start_of_turn>", "<end_of_turn>"]
    # The second stop is the one Gemma 3 needs: the first does not hide it.
    assert found(text + GOOD.split("\n", 1)[1]) == []


def test_repeated_parameters_last_wins():
    assert not found(with_good("PARAMETER num_ctx 2048", "PARAMETER num_ctx 8192"))
    warnings = found(with_good("PARAMETER num_ctx 8192", "PARAMETER num_ctx 2048"))
    assert [(line, sev) for line, sev, _ in warnings] == [(NEXT_LINE + 1, "warning")]


def test_instruction_names_are_case_insensitive_roles_and_parameters_are_not():
    assert commands("fRoM foo\nsystem hi\nparameter num_ctx 1") == [
        ("model", "foo"),
        ("system", "hi"),
        ("num_ctx", "1"),
    ]
    assert ERR_ROLE in syntax_error("FROM foo\nMESSAGE System hi").message


def test_crlf_line_endings_count_one_line_each():
    text = 'FROM foo\r\nPARAMETER stop "<end_of_turn>"\r\nTEMPLATE """a\r\nb"""\r\n\r\n'
    assert commands(text) == [("model", "foo"), ("stop", "<end_of_turn>"), ("template", "a\r\nb")]
    # Ollama counts \r and \n as two lines; the real line is 6.
    assert syntax_error(text + "BADCMD x\r\n").line == 6
    assert syntax_error("FROM foo\rFORM bar\r").line == 2  # a lone \r breaks lines too


def test_utf8_bom_is_dropped():
    # Without the BOM dropped, "\ufeff#" would start a bad instruction name.
    assert commands("\ufeff# Borealis\nFROM foo\n") == [("model", "foo")]


def test_nordic_letters_and_other_text_survive():
    text = "FROM foo\nSYSTEM Svar på bokmål eller nynorsk: æøå ÆØÅ 你好👋\n"
    text += "MESSAGE user Hei, går det bra?\n"
    assert commands(text)[1:] == [
        ("system", "Svar på bokmål eller nynorsk: æøå ÆØÅ 你好👋"),
        ("message", "user: Hei, går det bra?"),
    ]


def test_tabs_stay_and_invisible_format_characters_vanish_as_in_ollama():
    # Go's strconv.IsPrint drops U+200B; tabs are kept as the value's spaces.
    assert commands("FROM foo\nSYSTEM a\tb\u200bc")[1] == ("system", "a\tbc")


# --- syntax errors: one, with its line ----------------------------------------------


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("FROM x\n\nFORM y\n", 3, f'{ERR_COMMAND} (got "FORM")'),
        ("FROM x\nBADCOMMAND param1 value1\n", 2, ERR_COMMAND),
        ("FROM x\nFROM: y\n", 2, f'{ERR_COMMAND} (got "FROM:")'),
        ("FROM x\n  SYSTEM\nhello\n", 2, "SYSTEM has no value"),
        ("FROM x\nSYSTEM", 2, "SYSTEM has no value"),
        ("FROM x\nFORM", 2, ERR_COMMAND),
        ("FROM x\nMESSAGE tool hi\n", 2, f'{ERR_ROLE} (got "tool")'),
        ("FROM x\nMESSAGE badguy I'm a bad guy!\n", 2, ERR_ROLE),
        ("FROM x\nMESSAGE user: hi\n", 2, f'{ERR_ROLE} (got "user:")'),
        ("FROM x\nMESSAGE system\n", 2, "MESSAGE system has no content"),
        ("FROM x\nMESSAGE system", 2, "MESSAGE system has no content"),
        ("FROM x\nPARAMETER param1\n", 2, "PARAMETER param1 has no value"),
        ("FROM x\nPARAMETER top-k 40\n", 2, "invalid character '-' in PARAMETER name \"top-\""),
        (
            'FROM x\n\nTEMPLATE """{{ .Prompt }}\n\nmore\n',
            3,
            'unterminated """: the """ opened on line 3 is never closed',
        ),
        ('FROM x\nSYSTEM """This is a multiline system.""\n\t\t\t', 2, 'unterminated """'),
        ('FROM x\nSYSTEM """closed""" but more\nFROM y\n', 2, 'unterminated """'),
        (
            'FROM x\nPARAMETER stop "<end_of_turn>\nPARAMETER num_ctx 8192\n',
            2,
            'unterminated ": the " opened on line 2 is never closed',
        ),
        ('FROM x\nSYSTEM "\n\t\t\t', 2, 'unterminated "'),
    ],
)
def test_syntax_errors_name_their_line(text, line, message):
    error = syntax_error(text)
    assert (error.line, message in error.message) == (line, True), error.message
    assert lint_modelfile(text, "M") == [Problem("M", line, "error", error.message)]


def test_parser_stops_at_the_first_syntax_error_like_ollama():
    text = "FROM x\nFORM y\nMESSAGE bad z\nPARAMETER Temperature 1\n"
    assert [(p.line, p.severity) for p in lint_modelfile(text)] == [(2, "error")]


# --- errors ollama create would give ------------------------------------------------


@pytest.mark.parametrize(
    "line, message",
    [
        ("PARAMETER num_gqa 8", "unknown parameter 'num_gqa'"),
        ("PARAMETER numa true", "unknown parameter 'numa'"),  # gone from api.Runner
        ("PARAMETER tfs_z 1.0", "unknown parameter 'tfs_z'"),
        (
            "PARAMETER Temperature 0.7",
            "unknown parameter 'Temperature': parameter names are case-sensitive, "
            "write temperature",
        ),
        ("PARAMETER temprature 0.7", "did you mean temperature?"),
        ("PARAMETER  temperature 0.7", "unknown parameter ''"),  # two spaces: empty name
        ("PARAMETER num_ctx 8192.0", "invalid int value [8192.0]: num_ctx takes a base-10"),
        ("PARAMETER num_ctx 1e4", "invalid int value [1e4]"),
        ("PARAMETER seed 0x10", "invalid int value [0x10]"),
        ("PARAMETER top_k 40 # default", "(a # after a value is part of the value"),
        ("PARAMETER use_mmap yes", "invalid bool value [yes]: use_mmap takes true or false"),
        ("PARAMETER temperature warm", "invalid float value [warm]: temperature takes a number"),
        ("PARAMETER top_p 1e39", "invalid float value [1e39]"),  # overflows float32
        ("REQUIRES 0.14.0.1", "requires must be a valid semver (e.g. 0.14.0), not '0.14.0.1'"),
        ("REQUIRES 01.2.3", "requires must be a valid semver"),
        ("REQUIRES latest", "requires must be a valid semver"),
        ("ADAPTER ./no-such-adapter.gguf", "ADAPTER ./no-such-adapter.gguf: no such file"),
        ("DRAFT ./no-such-draft.gguf", "DRAFT ./no-such-draft.gguf: no such file"),
    ],
)
def test_errors_on_their_line(line, message, tmp_path):
    errors = found(with_good(line), "error", base_dir=tmp_path)
    assert len(errors) == 1, errors
    assert errors[0][0] == NEXT_LINE
    assert message in errors[0][2]


def test_valid_parameters_and_requires_pass(tmp_path):
    (tmp_path / "lora.gguf").write_bytes(b"GGUF")
    lines = [
        "PARAMETER num_keep -1",
        "PARAMETER seed +42",
        "PARAMETER num_predict 007",
        "PARAMETER min_p 0.05",
        "PARAMETER typical_p .9",
        "PARAMETER repeat_penalty 1_000.5",
        "PARAMETER presence_penalty -Inf",
        "PARAMETER frequency_penalty 0x1p-2",
        "PARAMETER use_mmap F",
        "PARAMETER num_gpu 99",
        "PARAMETER num_thread 8",
        "REQUIRES 0.14.0",
        "REQUIRES v0.12.1-rc.1+build.5",
        "ADAPTER ./lora.gguf",
    ]
    assert found(with_good(*lines), base_dir=tmp_path) == []


def test_missing_from_is_an_error_on_line_1():
    text = 'PARAMETER stop "<end_of_turn>"\nPARAMETER num_ctx 16384\n'
    errors = found(text, "error")
    assert errors == [(1, "error", errors[0][2])]
    assert errors[0][2].startswith("no FROM line")
    assert found("", "error")[0][:2] == (1, "error")


def test_parameter_that_is_an_instruction_warns():
    # CreateRequest switches on the name first: this sets the system prompt.
    (warning,) = found(with_good("PARAMETER system Svar kort."))
    assert warning[:2] == (NEXT_LINE, "warning")
    assert "Ollama takes it as a SYSTEM instruction; write SYSTEM Svar kort. instead" in warning[2]


def test_deprecated_parameter_warns():
    (warning,) = found(with_good("PARAMETER mirostat 2"))
    assert warning[:2] == (NEXT_LINE, "warning")
    assert "deprecated" in warning[2]


# --- Go strconv semantics -----------------------------------------------------------


@pytest.mark.parametrize(
    "value, ok",
    [
        ("1", True),
        ("+1", True),
        ("-1", True),
        ("007", True),
        ("9223372036854775807", True),
        ("-9223372036854775808", True),
        ("9223372036854775808", False),
        ("1e3", False),
        ("0x10", False),
        ("1_000", False),
        ("1.0", False),
        ("", False),
        (" 1", False),
        ("١", False),  # Python's int() takes Arabic-Indic digits; Go does not
    ],
)
def test_go_parse_int(value, ok):
    assert (go_parse_int(value) is not None) == ok


@pytest.mark.parametrize(
    "value, ok",
    [
        ("0.7", True),
        ("1", True),
        ("+.5", True),
        ("5.", True),
        ("1E-3", True),
        ("1_000.5", True),
        ("0x1p-2", True),
        ("0x1.8P+1", True),
        ("inf", True),
        ("-Infinity", True),
        ("NaN", True),
        ("3.4028235e38", True),  # float32's largest
        ("1e-50", True),  # underflow is not an error
        ("3.5e38", False),  # overflows float32
        ("0x1p128", False),
        ("0x1", False),  # a hex float needs its p exponent
        ("+nan", False),
        ("infin", False),
        (".", False),
        ("e5", False),
        ("1e", False),
        ("1,5", False),
        ("1__0", False),
        ("_1", False),
        ("1_.5", False),
        ("", False),
    ],
)
def test_go_parse_float32(value, ok):
    assert go_float32_ok(value) == ok


@pytest.mark.parametrize(
    "value, result",
    [
        ("1", True),
        ("t", True),
        ("T", True),
        ("TRUE", True),
        ("true", True),
        ("True", True),
        ("0", False),
        ("f", False),
        ("FALSE", False),
        ("False", False),
        ("yes", None),
        ("on", None),
        ("tRUE", None),
        ("", None),
    ],
)
def test_go_parse_bool(value, result):
    assert go_parse_bool(value) is result


# --- warnings -----------------------------------------------------------------------


def test_good_modelfile_is_clean():
    assert lint_modelfile(GOOD) == []


def test_missing_end_of_turn_stop_warns_at_from():
    text = GOOD.replace('PARAMETER stop "<end_of_turn>"\n', "")
    (warning,) = found(text)
    assert warning[:2] == (1, "warning")
    assert 'add: PARAMETER stop "<end_of_turn>"' in warning[2]
    assert "made-up next turn" in warning[2]


def test_other_stops_do_not_count_and_the_warning_points_at_them():
    text = GOOD.replace('"<end_of_turn>"', '"<eos>"')
    assert [w[:2] for w in found(text)] == [(STOP_LINE, "warning")]


def test_unquoted_end_of_turn_stop_counts():
    assert found(GOOD.replace('"<end_of_turn>"', "<end_of_turn>")) == []


def test_missing_template_warns():
    text = "FROM gemma3:4b\nPARAMETER stop <end_of_turn>\nPARAMETER num_ctx 8192\n"
    (warning,) = found(text)
    assert warning[:2] == (1, "warning")
    assert warning[2].startswith("no TEMPLATE")


def test_template_that_drops_system_messages_warns():
    text = GOOD.replace(FOLDING_TEMPLATE, "<start_of_turn>user\n{{ .Prompt }}<end_of_turn>")
    (warning,) = found(text)
    assert warning[:2] == (2, "warning")
    assert "drops system messages" in warning[2]


@pytest.mark.parametrize(
    "template",
    [
        LIBRARY_GEMMA3,
        '{{ range .Messages }}{{ if eq .Role "user" "system" }}<start_of_turn>user\n'
        "{{ .Content }}<end_of_turn>\n{{ end }}{{ end }}",
        '{{ range .Messages }}{{ if eq .Role "system" }}<start_of_turn>user\n'
        "{{ .Content }}<end_of_turn>\n{{ end }}{{ end }}",
        "{{ if .System }}<start_of_turn>system\n{{ .System }}<end_of_turn>\n{{ end }}",
        "{{ if .System }}<start_of_turn>user\n{{ .System }}<end_of_turn>\n{{ end }}"
        "<start_of_turn>user\n{{ .Prompt }}<end_of_turn>",
    ],
)
def test_template_with_a_system_turn_of_its_own_warns(template):
    (warning,) = found(GOOD.replace(FOLDING_TEMPLATE, template))
    assert warning[:2] == (2, "warning")
    assert "as a turn of its own" in warning[2]
    assert "first user turn" in warning[2]


def test_last_template_wins():
    text = GOOD + f'TEMPLATE """{LIBRARY_GEMMA3}"""\n'
    assert [w[:2] for w in found(text)] == [(NEXT_LINE, "warning")]


def test_borealis_template_passes():
    from borealis_local.templates import ollama_template

    assert found(GOOD.replace(FOLDING_TEMPLATE, ollama_template())) == []


@pytest.mark.parametrize("num_ctx, warns", [(2048, True), (MIN_NUM_CTX - 1, True), (8192, False)])
def test_small_num_ctx_warns_on_its_line(num_ctx, warns):
    text = GOOD.replace("num_ctx 16384", f"num_ctx {num_ctx}")
    warnings = found(text)
    assert bool(warnings) == warns
    if warns:
        assert warnings[0][:2] == (NUM_CTX_LINE, "warning")
        assert "set: PARAMETER num_ctx 16384" in warnings[0][2]


def test_missing_num_ctx_warns_with_the_fix():
    (warning,) = found(GOOD.replace("PARAMETER num_ctx 16384\n", ""))
    assert warning[:2] == (1, "warning")
    assert "4096" in warning[2] and "from the front" in warning[2]
    assert warning[2].endswith("add: PARAMETER num_ctx 16384")


def test_badly_typed_num_ctx_is_only_an_error():
    errors = found(GOOD.replace("16384", "big"))
    assert [p[:2] for p in errors] == [(NUM_CTX_LINE, "error")]


def from_problems(value: str, base_dir: Path) -> list[tuple[int, str, str]]:
    reference = "huggingface.co/NbAiLab/borealis-4b-gguf:Q4_K_M"
    return found(GOOD.replace(reference, value), base_dir=base_dir)


@pytest.mark.parametrize(
    "value",
    ["./missing.gguf", "../missing.gguf", "missing.gguf", "/no/such/dir/model", "weights/m.BIN"],
)
def test_from_path_that_does_not_exist_warns(value, tmp_path):
    (warning,) = from_problems(value, tmp_path)
    assert warning[:2] == (1, "warning")
    assert f"FROM {value}: no such file" in warning[2]
    assert "treats the value as a model name and tries to pull it" in warning[2]


def test_from_path_resolves_against_base_dir(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "borealis-4b.gguf").write_bytes(b"GGUF")
    assert from_problems("../borealis-4b.gguf", tmp_path / "sub") == []
    assert from_problems("./borealis-4b.gguf", tmp_path) == []
    assert from_problems("borealis-4b.gguf", tmp_path) == []
    assert len(from_problems("./borealis-4b.gguf", tmp_path / "sub")) == 1


def test_from_home_path_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert len(from_problems("~/models/b.gguf", tmp_path)) == 1
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "b.gguf").write_bytes(b"GGUF")
    assert from_problems("~/models/b.gguf", Path("/")) == []


def test_from_glob_counts_when_it_matches(tmp_path):
    assert len(from_problems("./model-*.gguf", tmp_path)) == 1
    (tmp_path / "model-00001-of-00002.gguf").write_bytes(b"GGUF")
    assert from_problems("./model-*.gguf", tmp_path) == []


@pytest.mark.parametrize(
    "value",
    ["huggingface.co/NbAiLab/borealis-4b-gguf:Q4_K_M", "huggingface.co/x/y.gguf", "gemma3:4b",
     "borealis"],
)
def test_from_model_references_are_not_paths(value, tmp_path):
    assert from_problems(value, tmp_path) == []


@pytest.mark.parametrize("value", ["hf.co/NbAiLab/borealis-4b-gguf:Q4_K_M", "HF.CO/x/y"])
def test_from_hf_co_is_a_warning_with_the_reason_and_the_fix(value, tmp_path):
    (problem,) = from_problems(value, tmp_path)
    line, severity, message = problem
    assert (line, severity) == (1, "warning")  # the FROM line
    assert "ollama/ollama#15661" in message and "cannot pull from hf.co" in message
    assert f"FROM huggingface.co/{value[len('hf.co/'):]}" in message


def test_no_generated_modelfile_or_create_request_uses_hf_co():
    from borealis_local.catalog import MODELS, QUANTS
    from borealis_local.modelfile import render_modelfile

    for model in MODELS:
        for quant in QUANTS:
            assert model.hub_reference(quant).startswith("huggingface.co/NbAiLab/")
            rendered = render_modelfile(model, quant=quant)
            assert "hf.co/" not in rendered.replace("huggingface.co/", "")


# --- files ----------------------------------------------------------------------------


def test_lint_files_reports_unreadable_files_at_line_0(tmp_path):
    missing = tmp_path / "nope.Modelfile"
    good = tmp_path / "good.Modelfile"
    good.write_text(GOOD, encoding="utf-8")
    problems = lint_files([missing, str(good), tmp_path])
    assert [(p.path, p.line, p.severity) for p in problems] == [
        (str(missing), 0, "error"),
        (str(tmp_path), 0, "error"),
    ]
    expected = f"{missing}:0: error: cannot read {missing}: No such file or directory"
    assert str(problems[0]) == expected


def test_lint_files_resolves_from_against_the_modelfile_folder(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "b.gguf").write_bytes(b"GGUF")
    modelfile = tmp_path / "models" / "Modelfile"
    modelfile.write_text(GOOD.replace("huggingface.co/NbAiLab/borealis-4b-gguf:Q4_K_M", "./b.gguf"))
    assert lint_files([modelfile]) == []


@pytest.mark.parametrize(
    "encoded",
    [
        b"\xef\xbb\xbf" + GOOD.encode("utf-8"),
        b"\xff\xfe" + GOOD.encode("utf-16-le"),
        b"\xfe\xff" + GOOD.encode("utf-16-be"),
        GOOD.replace("\n", "\r\n").encode("utf-8"),
    ],
    ids=["utf-8 BOM", "utf-16-le", "utf-16-be", "crlf"],
)
def test_lint_files_reads_what_ollama_reads(encoded, tmp_path):
    path = tmp_path / "Modelfile"
    path.write_bytes(encoded)
    assert lint_files([path]) == []


def test_lint_files_lines_with_bom_and_crlf(tmp_path):
    path = tmp_path / "Modelfile"
    text = "# Borealis — æøå\r\nFROM x\r\nSYSTEM Hei på deg\r\nPARAMETER num_ctx 4096\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    problems = [(p.line, p.severity, p.message.split(":")[0]) for p in lint_files([path])]
    assert (4, "warning", "num_ctx 4096 is under 8192") in problems
    assert [line for line, _, _ in problems] == [2, 2, 4]


def test_problem_format():
    assert str(Problem("m/Modelfile", 3, "error", "boom")) == "m/Modelfile:3: error: boom"


EXPECT = re.compile(r"^# expect: (\d+) (error|warning): (.*)$", re.M)


@pytest.mark.parametrize("path", sorted(BAD.glob("*.Modelfile")), ids=lambda p: p.name)
def test_bad_modelfile_fixtures(path):
    expected = [(int(n), sev, text) for n, sev, text in EXPECT.findall(path.read_text())]
    assert expected, f"{path.name} has no '# expect:' lines"
    got = lint_files([path])
    assert [(p.line, p.severity) for p in got] == [(n, sev) for n, sev, _ in expected]
    for problem, (_, _, text) in zip(got, expected, strict=True):
        assert text in problem.message


def test_shipped_modelfiles_are_clean():
    shipped = sorted((REPO / "modelfiles").glob("*.Modelfile"))
    assert shipped, "no Modelfiles in modelfiles/"
    assert [str(p) for p in lint_files(shipped)] == []
