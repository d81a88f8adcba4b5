"""`borealis lint`: check Ollama Modelfiles before `ollama create` does.

`parse_modelfile` mirrors Ollama's own parser, `ParseFile` in ollama/ollama
`parser/parser.go`, rune for rune, so a file reads here exactly as Ollama reads it:

- An instruction name (FROM, PARAMETER, TEMPLATE, SYSTEM, ADAPTER, LICENSE, MESSAGE,
  REQUIRES, DRAFT, RENDERER, PARSER; any case) is ASCII letters, then a space or tab.
- `#` starts a comment only where an instruction could start. After a value there is
  no comment: `FROM x # note` makes the value `x # note`.
- A value runs to the end of its line, trimmed. One that starts with `"` or `\"\"\"`
  runs on, across lines, until a line ends with the same quote; the quotes are then
  cut off. There are no escape sequences. `\\r` counts as a line break (so `\\r\\n`
  files work), and other control and format characters (a stray BOM, say) vanish from
  values, as in Ollama.
- `PARAMETER name value`: the name is ASCII letters, digits and `_`, case kept.
  `MESSAGE role content`: the role is exactly `system`, `user` or `assistant`.
- A UTF-8 BOM at the start is dropped (`lint_files` also reads UTF-16 with a BOM).

Line numbers are real lines (`\\r\\n` is one break; Ollama counts two) and point at
the line an instruction starts on, or the line an unclosed quote opened on, where
Ollama says only "unexpected EOF". Ollama also requires a FROM line in ParseFile;
here that is `lint_modelfile`'s job, so the parser stays grammar-only.

`lint_modelfile` then reports what `ollama create` would refuse (api.FormatParams:
unknown or badly typed PARAMETERs, a bad REQUIRES version, a missing ADAPTER or DRAFT
file, no FROM) as errors, and Borealis pitfalls as warnings: no `<end_of_turn>` stop,
a TEMPLATE that loses system messages or gives them their own turn, too small a
context, and a FROM path that does not exist.
"""

from __future__ import annotations

import difflib
import glob
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

from borealis_local.catalog import CHAT_FORMAT
from borealis_local.errors import ModelfileError

MIN_NUM_CTX = 8192
# What the warnings suggest: the catalog's default for the larger Borealis models.
SUGGESTED_NUM_CTX = 16384

COMMANDS = (
    "from", "license", "template", "system", "adapter", "draft",
    "renderer", "parser", "parameter", "message", "requires",
)  # fmt: skip
ROLES = ("system", "user", "assistant")

# Ollama's own wording (parser.go errInvalidCommand, errInvalidMessageRole).
ERR_COMMAND = (
    'command must be one of "from", "license", "template", "system", "adapter", "draft", '
    '"renderer", "parser", "parameter", "message", or "requires"'
)
ERR_ROLE = 'message role must be one of "system", "user", or "assistant"'

# api.Options and api.Runner fields by json name: what api.FormatParams accepts.
PARAMETER_TYPES = {
    "num_keep": "int",
    "seed": "int",
    "num_predict": "int",
    "top_k": "int",
    "top_p": "float",
    "min_p": "float",
    "typical_p": "float",
    "repeat_last_n": "int",
    "temperature": "float",
    "repeat_penalty": "float",
    "presence_penalty": "float",
    "frequency_penalty": "float",
    "stop": "string",
    "num_ctx": "int",
    "num_batch": "int",
    "num_gpu": "int",
    "main_gpu": "int",
    "use_mmap": "bool",
    "num_thread": "int",
}
# parser.go deprecatedParameters: Ollama prints a warning and ignores them.
DEPRECATED_PARAMETERS = (
    "penalize_newline", "low_vram", "f16_kv", "logits_all", "vocab_only",
    "use_mlock", "mirostat", "mirostat_tau", "mirostat_eta",
)  # fmt: skip
# CreateRequest switches on the command name before it looks at parameters, and a
# PARAMETER's command name is the parameter's name: `PARAMETER system x` is a SYSTEM.
_PSEUDO_PARAMETERS = {
    "model": "FROM", "draft": "DRAFT", "adapter": "ADAPTER", "template": "TEMPLATE",
    "system": "SYSTEM", "license": "LICENSE", "renderer": "RENDERER",
    "parser": "PARSER", "requires": "REQUIRES", "message": "MESSAGE",
}  # fmt: skip


@dataclass(frozen=True)
class Instruction:
    name: str  # lower-case instruction name as written: "from", "parameter", …
    args: str  # the value, unquoted; for PARAMETER the value only, for MESSAGE the content
    line: int  # 1-based line the instruction starts on
    param: str | None = None  # PARAMETER name, case kept
    role: str | None = None  # MESSAGE role


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    severity: str  # "error" | "warning"
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.severity}: {self.message}"


# --- the grammar (parser.go ParseFile) ----------------------------------------------

_NIL, _NAME, _VALUE, _PARAMETER, _MESSAGE, _COMMENT = range(6)
_SPACE = " \t"
_NEWLINE = "\r\n"


def _is_alpha(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


def _unquote(value: str) -> tuple[str, bool]:
    """parser.go unquote: strip one pair of \"\"\" or \" quotes; False while one is open."""
    if value.startswith('"""'):
        if len(value) >= 6 and value.endswith('"""'):
            return value[3:-3], True
        return "", False
    if value.startswith('"'):
        if len(value) >= 2 and value.endswith('"'):
            return value[1:-1], True
        return "", False
    return value, True


class _Parser:
    """ParseFile's state machine, one character at a time."""

    def __init__(self) -> None:
        self.state = _NIL
        self.buf: list[str] = []
        self.line = 1  # line of the character being read
        self.start = 1  # line the current instruction started on
        self.name = ""
        self.param: str | None = None
        self.role: str | None = None
        self.out: list[Instruction] = []
        self.steps: dict[int, Callable[[str], None]] = {
            _NIL: self._nil,
            _COMMENT: self._comment,
            _NAME: self._name,
            _PARAMETER: self._parameter,
            _MESSAGE: self._message,
            _VALUE: self._value,
        }

    def run(self, text: str) -> list[Instruction]:
        previous = ""
        for ch in text:
            self.steps[self.state](ch)
            if ch == "\r" or (ch == "\n" and previous != "\r"):
                self.line += 1
            previous = ch
        self._finish()
        return self.out

    def _fail(self, message: str) -> ModelfileError:
        return ModelfileError(message, self.start)

    def _word(self) -> str:
        return "".join(self.buf)

    def _nil(self, ch: str) -> None:
        if ch == "#":
            self.state = _COMMENT
        elif ch not in _SPACE + _NEWLINE:
            self.state, self.start, self.param, self.role = _NAME, self.line, None, None
            # Ollama keeps only printable runes; a stray BOM starts a name invisibly.
            self.buf = [ch] if ch.isprintable() else []

    def _comment(self, ch: str) -> None:
        if ch in _NEWLINE:
            self.state = _NIL

    def _name(self, ch: str) -> None:
        if _is_alpha(ch):
            self.buf.append(ch)
        elif ch in _SPACE:
            self._end_name()
        else:
            raise self._name_error(ch)

    def _end_name(self) -> None:
        word = self._word()
        if word.lower() not in COMMANDS:
            raise self._fail(f'{ERR_COMMAND} (got "{word}")')
        self.name = word.lower()
        self.state = {"parameter": _PARAMETER, "message": _MESSAGE}.get(self.name, _VALUE)
        self.buf = []

    def _name_error(self, ch: str) -> ModelfileError:
        word = self._word()
        if ch in _NEWLINE and word.lower() in COMMANDS:
            return self._no_value()  # Ollama says "command must be one of …", which misleads
        got = word if ch in _NEWLINE else word + ch
        return self._fail(f'{ERR_COMMAND} (got "{got}")')

    def _parameter(self, ch: str) -> None:
        if (ch.isascii() and ch.isalnum()) or ch == "_":
            self.buf.append(ch)
        elif ch in _SPACE:
            self.param, self.buf, self.state = self._word(), [], _VALUE
        elif ch in _NEWLINE:
            raise self._no_value()
        else:
            # Ollama: "unexpected EOF: <name so far>", with no line number.
            raise self._fail(
                f'invalid character {ch!r} in PARAMETER name "{self._word()}{ch}": '
                "names are ASCII letters, digits and _"
            )

    def _message(self, ch: str) -> None:
        if _is_alpha(ch):
            self.buf.append(ch)
        elif ch in _SPACE:
            if self._word() not in ROLES:
                raise self._fail(f'{ERR_ROLE} (got "{self._word()}")')
            self.role, self.buf, self.state = self._word(), [], _VALUE
        elif ch in _NEWLINE:
            raise self._no_value()
        else:
            raise self._fail(f'{ERR_ROLE} (got "{self._word()}{ch}")')

    def _value(self, ch: str) -> None:
        if ch in _NEWLINE:
            value, closed = _unquote(self._word().strip(_SPACE + _NEWLINE))
            if closed:
                self._emit(value)
                self.state, self.buf = _NIL, []
                return
            self.buf.append(ch)
        elif ch in _SPACE or ch.isprintable():
            self.buf.append(ch)

    def _emit(self, value: str) -> None:
        self.out.append(Instruction(self.name, value, self.start, self.param, self.role))

    def _finish(self) -> None:
        word = self._word()
        if self.state == _VALUE:
            value, closed = _unquote(word.strip(_SPACE + _NEWLINE))
            if not closed:
                raise self._fail(self._unclosed_quote(word))
            self._emit(value)
        elif self.state == _NAME and word.lower() not in COMMANDS:
            raise self._fail(f'{ERR_COMMAND} (got "{word}")')
        elif self.state in (_NAME, _PARAMETER, _MESSAGE):
            raise self._no_value()  # Ollama: "unexpected EOF"

    def _no_value(self) -> ModelfileError:
        word = self._word()
        if self.state == _PARAMETER:
            usage = f"PARAMETER {word} has no value: write PARAMETER <name> <value>"
        elif self.state == _MESSAGE:
            usage = f"MESSAGE {word} has no content: write MESSAGE <role> <content>"
        else:
            usage = f"{word} has no value: write {word.upper()} and its value"
        return self._fail(usage + " on one line")

    def _unclosed_quote(self, word: str) -> str:
        quote = '"""' if word.lstrip(_SPACE).startswith('"""') else '"'
        return (
            f"unterminated {quote}: the {quote} opened on line {self.start} is never closed; "
            f"end the value with {quote} at the end of a line (Ollama: unexpected EOF)"
        )


def parse_modelfile(text: str) -> list[Instruction]:
    """The instructions of a Modelfile, read as Ollama's parser.go reads them.

    Grammar only: raises ModelfileError(message, line) at the first syntax error,
    where Ollama stops too. It does not insist on a FROM line (lint_modelfile does).
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    return _Parser().run(text)


# --- PARAMETER values (api.FormatParams, with Go's strconv) --------------------------

_GO_BOOLS = frozenset("1 t T TRUE true True 0 f F FALSE false False".split())
_INT64 = range(-(2**63), 2**63)
_GO_INT = re.compile(r"[+-]?[0-9]+")  # ParseInt(s, 10, 64): no prefixes, no underscores
# ParseFloat: Go float literal syntax; an underscore only between two digits (or
# right after 0x), a hex float needs its p exponent; inf, infinity and nan in any case.
_DIGITS = r"[0-9]+(?:_[0-9]+)*"
_HEX = r"[0-9a-fA-F]"
_GO_FLOAT = re.compile(
    rf"""[+-]?(?:
        (?P<dec>(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][+-]?{_DIGITS})?)
      | 0[xX](?P<hexint>(?:_?{_HEX})*)(?:\.(?P<hexfrac>{_HEX}+(?:_{_HEX}+)*)?)?
           [pP](?P<hexexp>[+-]?{_DIGITS})
      | (?i:inf|infinity)
    )|(?i:nan)""",
    re.VERBOSE,
)
# The smallest magnitude that rounds to infinity as a float32: ParseFloat's ErrRange.
_FLOAT32_OVERFLOW = 2**128 - 2**103


def go_parse_int(value: str) -> int | None:
    """strconv.ParseInt(value, 10, 64), or None where Go returns an error."""
    if not _GO_INT.fullmatch(value):
        return None
    number = int(value)
    return number if number in _INT64 else None


def go_parse_bool(value: str) -> bool | None:
    """strconv.ParseBool, or None where Go returns an error."""
    return value in {"1", "t", "T", "TRUE", "true", "True"} if value in _GO_BOOLS else None


def go_float32_ok(value: str) -> bool:
    """Whether strconv.ParseFloat(value, 32) succeeds: Go syntax, and no overflow."""
    match = _GO_FLOAT.fullmatch(value)
    if not match:
        return False
    if match["dec"]:
        return Decimal(match["dec"].replace("_", "")).copy_abs() < _FLOAT32_OVERFLOW
    if match["hexexp"]:
        if not (match["hexint"] or match["hexfrac"]):
            return False  # "0xp1": no mantissa digits
        return not _hex_overflows(match["hexint"] or "", match["hexfrac"] or "", match["hexexp"])
    return True  # inf, nan: no range error


def _hex_overflows(whole: str, frac: str, exponent: str) -> bool:
    digits = (whole + frac).replace("_", "")
    mantissa = int(digits, 16) if digits.strip("0") else 0
    if mantissa == 0:
        return False
    power = int(exponent.replace("_", "")) - 4 * len(frac.replace("_", ""))
    magnitude = mantissa.bit_length() + power  # the value lies in [2**(m-1), 2**m)
    if magnitude != 128:
        return magnitude > 128
    return Fraction(mantissa) * Fraction(2) ** power >= _FLOAT32_OVERFLOW


_TYPE_CHECKS: dict[str, tuple[Callable[[str], object], str]] = {
    "int": (lambda v: go_parse_int(v) is not None, "a base-10 integer, e.g. 8192"),
    "float": (go_float32_ok, "a number, e.g. 0.7"),
    "bool": (lambda v: go_parse_bool(v) is not None, "true or false"),
}


# --- lint ---------------------------------------------------------------------------

_Finding = tuple[int, str, str]  # line, severity, message


def _error(line: int, message: str) -> _Finding:
    return line, "error", message


def _warning(line: int, message: str) -> _Finding:
    return line, "warning", message


def _command(ins: Instruction) -> str:
    """The name Ollama's Command carries: "model" for FROM, the name for a PARAMETER."""
    if ins.name == "from":
        return "model"
    return ins.param if ins.name == "parameter" else ins.name


class _Modelfile:
    """Parsed instructions, looked at the way CreateRequest looks at them."""

    def __init__(self, instructions: list[Instruction], base_dir: Path):
        self.instructions = instructions
        self.base_dir = base_dir

    def all(self, command: str) -> list[Instruction]:
        return [ins for ins in self.instructions if _command(ins) == command]

    def last(self, command: str) -> Instruction | None:
        found = self.all(command)
        return found[-1] if found else None

    @property
    def from_line(self) -> int:
        first = self.all("model")
        return first[0].line if first else 1


def lint_modelfile(text: str, path: str = "<stdin>", base_dir: Path | None = None) -> list[Problem]:
    """Problems in one Modelfile: errors first (what `ollama create` refuses), then
    warnings (Borealis pitfalls), each by line. Relative FROM, ADAPTER and DRAFT paths
    start from base_dir, as Ollama starts them from the Modelfile's folder; None means
    the current folder. A syntax error is the one problem reported, as in Ollama."""
    try:
        instructions = parse_modelfile(text)
    except ModelfileError as exc:
        return [Problem(path, exc.line or 0, "error", exc.message)]
    modelfile = _Modelfile(instructions, Path(base_dir) if base_dir is not None else Path.cwd())
    findings = [finding for check in _CHECKS for finding in check(modelfile)]
    findings.sort(key=lambda f: (f[1] != "error", f[0]))
    return [Problem(path, line, severity, message) for line, severity, message in findings]


def lint_files(paths: Iterable[str | Path]) -> list[Problem]:
    """lint_modelfile over files; one that cannot be read is an error at line 0."""
    problems: list[Problem] = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            reason = f"cannot read {path}: {exc.strerror or exc}"
            problems.append(Problem(str(path), 0, "error", reason))
            continue
        problems += lint_modelfile(_decode(data), str(path), Path(path).parent)
    return problems


def _decode(data: bytes) -> str:
    # Ollama decodes with unicode.BOMOverride: a BOM picks UTF-16, else UTF-8, and
    # invalid bytes become U+FFFD.
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8-sig", errors="replace")


# Errors: what `ollama create` refuses.


def _check_from(mf: _Modelfile) -> Iterator[_Finding]:
    froms = mf.all("model")
    if not froms:
        yield _error(1, "no FROM line: add FROM <model name or path to a .gguf file>")
    for ins in froms:
        if not ins.args:
            yield _error(ins.line, "FROM has no value: name a model or a .gguf file")


def _check_parameters(mf: _Modelfile) -> Iterator[_Finding]:
    for ins in mf.instructions:
        if ins.name == "parameter":
            yield from _check_parameter(ins)


def _check_parameter(ins: Instruction) -> Iterator[_Finding]:
    name, value = ins.param or "", ins.args
    if name in _PSEUDO_PARAMETERS:
        word = _PSEUDO_PARAMETERS[name]
        yield _warning(
            ins.line,
            f"PARAMETER {name} is not a parameter: Ollama takes it as a {word} instruction; "
            f"write {word} {_short(value)} instead",
        )
    elif name in DEPRECATED_PARAMETERS:
        yield _warning(ins.line, f"parameter {name} is deprecated, Ollama ignores it: remove it")
    elif name not in PARAMETER_TYPES:
        yield _error(ins.line, f"unknown parameter '{name}'{_name_hint(name)}")
    elif PARAMETER_TYPES[name] in _TYPE_CHECKS:
        valid, expected = _TYPE_CHECKS[PARAMETER_TYPES[name]]
        if not valid(value):
            kind = PARAMETER_TYPES[name]
            yield _error(
                ins.line,
                f"invalid {kind} value [{value}]: {name} takes {expected}{_comment_hint(value)}",
            )


def _name_hint(name: str) -> str:
    if not name:
        return " (PARAMETER is followed by two spaces: write PARAMETER <name> <value>)"
    if name.lower() in PARAMETER_TYPES:
        return f": parameter names are case-sensitive, write {name.lower()}"
    close = difflib.get_close_matches(name, PARAMETER_TYPES, n=1)
    return f": did you mean {close[0]}?" if close else ""


def _comment_hint(value: str) -> str:
    if re.search(r"\s#", value):
        return " (a # after a value is part of the value: put comments on their own line)"
    return ""


def _short(value: str) -> str:
    return value if len(value) <= 40 and "\n" not in value else value[:37].split("\n")[0] + "…"


def _check_requires(mf: _Modelfile) -> Iterator[_Finding]:
    for ins in mf.all("requires"):
        version = ins.args if ins.args.startswith("v") else "v" + ins.args
        if not _SEMVER.fullmatch(version):
            message = f"requires must be a valid semver (e.g. 0.14.0), not {ins.args!r}"
            yield _error(ins.line, message)


# golang.org/x/mod/semver.IsValid: v1, v1.2 and v1.2.3[-pre][+build], no leading zeros.
_NUM = r"(?:0|[1-9][0-9]*)"
_PRE_ID = rf"(?:{_NUM}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_SEMVER = re.compile(
    rf"v{_NUM}(?:\.{_NUM}(?:\.{_NUM}(?:-{_PRE_ID}(?:\.{_PRE_ID})*)?"
    rf"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)?)?"
)


def _check_local_files(mf: _Modelfile) -> Iterator[_Finding]:
    # Unlike FROM, Ollama has no fallback for these: a missing file fails the create.
    for command in ("adapter", "draft"):
        for ins in mf.all(command):
            resolved = resolve_path(ins.args, mf.base_dir)
            if not _exists(resolved):
                yield _error(
                    ins.line,
                    f"{command.upper()} {ins.args}: no such file or directory ({resolved}); "
                    "paths are relative to the Modelfile's folder",
                )


# Warnings: Borealis pitfalls.


def _warn_stop(mf: _Modelfile) -> Iterator[_Finding]:
    eot = CHAT_FORMAT.end_of_turn
    stops = mf.all("stop")
    if eot not in (ins.args for ins in stops):
        line = stops[-1].line if stops else mf.from_line
        yield _warning(
            line,
            f'no PARAMETER stop "{eot}": Gemma 3 ends each turn with {eot}, and without that '
            "stop generation can run on into a made-up next turn; "
            f'add: PARAMETER stop "{eot}"',
        )


# A text heuristic over the template source, not a rendering:
# - it keeps system messages if it mentions `.System` or the string "system";
# - it gives them a turn of their own if it writes `<start_of_turn>system`, if `.System`
#   is followed straight by `<end_of_turn>`, or if a `{{ … }}` action that tests
#   `eq .Role "system"` also names "user" or is followed straight by `<start_of_turn>`.
#   Ollama's library gemma3 template does both: `{{- if or (eq .Role "user")
#   (eq .Role "system") }}<start_of_turn>user`, one user turn per system message.
_MENTIONS_SYSTEM = re.compile(r'\.System\b|"system"')
_SYSTEM_TURN = re.compile(r"<start_of_turn>system|\.System\s*-?\}\}\s*(?:\{\{-?\s*)?<end_of_turn>")
_ACTION = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_TESTS_SYSTEM_ROLE = re.compile(r'\beq\b[^}]*(?:\.Role[^}]*"system"|"system"[^}]*\.Role)')
_OPENS_TURN = re.compile(r'\s*(?:\{\{-?\s*")?<start_of_turn>')
_FOLD_ADVICE = (
    "Gemma 3 has no system turn: Google's format puts the system text at the start of "
    "the first user turn, followed by a blank line; use the Borealis template "
    "(borealis modelfile --write)"
)


def _warn_template(mf: _Modelfile) -> Iterator[_Finding]:
    template = mf.last("template")
    if template is None:
        yield _warning(
            mf.from_line,
            "no TEMPLATE: Ollama then uses whatever template comes with FROM (its library "
            f"gemma3 one gives a system message a user turn of its own). {_FOLD_ADVICE}",
        )
    elif not _MENTIONS_SYSTEM.search(template.args):
        yield _warning(
            template.line,
            "TEMPLATE drops system messages (it mentions neither .System nor the "
            f'"system" role), so SYSTEM and MESSAGE system lines have no effect. {_FOLD_ADVICE}',
        )
    elif _renders_system_turn(template.args):
        message = f"TEMPLATE renders a system message as a turn of its own. {_FOLD_ADVICE}"
        yield _warning(template.line, message)


def _renders_system_turn(template: str) -> bool:
    if _SYSTEM_TURN.search(template):
        return True
    for action in _ACTION.finditer(template):
        code = action.group()
        if not _TESTS_SYSTEM_ROLE.search(code):
            continue
        if '"user"' in code or _OPENS_TURN.match(template, action.end()):
            return True
    return False


def _warn_num_ctx(mf: _Modelfile) -> Iterator[_Finding]:
    fix = f"PARAMETER num_ctx {SUGGESTED_NUM_CTX}"
    found = mf.last("num_ctx")
    if found is None:
        yield _warning(
            mf.from_line,
            "no num_ctx: Ollama's default context (4096 tokens on most machines) silently "
            f"cuts longer prompts from the front, retrieved documents first; add: {fix}",
        )
        return
    value = go_parse_int(found.args)
    if value is not None and value < MIN_NUM_CTX:
        yield _warning(
            found.line,
            f"num_ctx {value} is under {MIN_NUM_CTX}: Ollama silently cuts longer prompts "
            f"from the front, retrieved documents first; set: {fix}",
        )


_PATH_PREFIXES = ("/", "./", "../", "~/", "\\", ".\\", "..\\")
_PATH_SUFFIXES = (".gguf", ".safetensors", ".bin")
_MODEL_REFERENCES = ("hf.co/", "huggingface.co/")


def looks_like_path(value: str) -> bool:
    """Whether a FROM value is meant as a local file rather than a model name."""
    if value.startswith(_MODEL_REFERENCES):
        return False
    if value in (".", "..", "~") or value.startswith(_PATH_PREFIXES):
        return True
    return value.lower().endswith(_PATH_SUFFIXES)


def resolve_path(value: str, base_dir: Path) -> str:
    """parser.go expandPath: absolute stays, ~ is a home, the rest joins base_dir."""
    if value.startswith(("/", "\\")):
        return os.path.abspath(value)
    if value.startswith("~"):
        return os.path.abspath(os.path.expanduser(value))
    return os.path.abspath(os.path.join(base_dir, value))


def _exists(resolved: str) -> bool:
    # Ollama globs FROM/DRAFT values; a pattern that matches nothing counts as missing.
    if glob.has_magic(resolved):
        return bool(glob.glob(resolved))
    return os.path.exists(resolved)


def _warn_from(mf: _Modelfile) -> Iterator[_Finding]:
    for ins in mf.all("model"):
        if ins.name == "from" and re.search(r"\s#", ins.args):
            yield _warning(
                ins.line,
                f"FROM value {ins.args!r} contains '#': a comment after a value is part of "
                "the value; put it on its own line",
            )
        elif ins.name == "from" and ins.args.lower().startswith("hf.co/"):
            yield _warning(
                ins.line,
                f"FROM {ins.args}: current Ollama cannot pull from hf.co (its registry "
                "token comes from huggingface.co, and Ollama refuses a token from another "
                "host: ollama/ollama#15661); write FROM "
                f"huggingface.co/{ins.args[len('hf.co/'):]}, which the hub documents as "
                "the same",
            )
        elif ins.args and looks_like_path(ins.args):
            resolved = resolve_path(ins.args, mf.base_dir)
            if not _exists(resolved):
                yield _warning(
                    ins.line,
                    f"FROM {ins.args}: no such file ({resolved}); Ollama then silently "
                    "treats the value as a model name and tries to pull it; fix the path "
                    "(relative paths start from the Modelfile's folder)",
                )


_CHECKS: tuple[Callable[[_Modelfile], Iterator[_Finding]], ...] = (
    _check_from,
    _check_parameters,
    _check_requires,
    _check_local_files,
    _warn_stop,
    _warn_template,
    _warn_num_ctx,
    _warn_from,
)
