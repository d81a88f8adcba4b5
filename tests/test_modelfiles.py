"""The committed artefacts: equal to the generator, lint-clean, and what they claim."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from borealis_local import artefacts, templates
from borealis_local.catalog import CHAT_FORMAT, MODELS, SAMPLING, get_model
from borealis_local.errors import BorealisError
from borealis_local.lint import lint_files, parse_modelfile
from borealis_local.modelfile import license_text, render_modelfile

REPO = Path(__file__).resolve().parent.parent
MODELFILES = REPO / "modelfiles"


def test_committed_files_equal_the_generator():
    stale = artefacts.stale_artefacts(MODELFILES)
    assert stale == [], f"run `borealis modelfile --write`: {stale}"


def test_generator_covers_every_model_and_both_templates():
    names = set(artefacts.generated_artefacts())
    assert {m.modelfile_name for m in MODELS} <= names
    assert {"templates/borealis.gotmpl", "templates/borealis.jinja"} <= names
    assert "llama-server/borealis.ini" in names


def test_write_then_check_in_a_fresh_directory(tmp_path):
    assert len(artefacts.write_artefacts(tmp_path)) == len(artefacts.generated_artefacts())
    assert artefacts.stale_artefacts(tmp_path) == []
    (tmp_path / "borealis-4b.Modelfile").write_text("FROM x\n")
    assert artefacts.stale_artefacts(tmp_path) == [tmp_path / "borealis-4b.Modelfile"]
    assert artefacts.write_artefacts(tmp_path) == [tmp_path / "borealis-4b.Modelfile"]


def test_every_committed_modelfile_is_lint_clean():
    files = sorted(MODELFILES.glob("*.Modelfile"))
    assert len(files) == 10
    assert [str(p) for p in lint_files(files)] == []


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_modelfile_says_what_it_should(model):
    text = (MODELFILES / model.modelfile_name).read_text()
    instructions = parse_modelfile(text)
    by_name = {}
    for ins in instructions:
        by_name.setdefault(ins.name, []).append(ins)
    assert [i.args for i in by_name["from"]] == [model.hub_reference("Q4_K_M")]
    # Ollama's parser reads back exactly the template file, byte for byte.
    (template,) = by_name["template"]
    assert template.args == (MODELFILES / "templates" / "borealis.gotmpl").read_text()
    params = {(i.param, i.args) for i in by_name["parameter"]}
    assert params == {
        ("stop", CHAT_FORMAT.end_of_turn),
        ("temperature", f"{SAMPLING.temperature:g}"),
        ("top_k", str(SAMPLING.top_k)),
        ("top_p", f"{SAMPLING.top_p:g}"),
        ("num_ctx", str(model.default_num_ctx)),
    }
    (licence,) = by_name["license"]
    assert licence.args == license_text(model)
    assert model.license.url in licence.args
    for restriction in model.license.restrictions:
        assert restriction in licence.args
    assert "system" not in by_name  # Borealis has its system prompt baked in
    assert f"ollama create {model.ollama_tag} -f modelfiles/{model.modelfile_name}" in text


def test_options_change_the_modelfile(tmp_path):
    model = get_model("1b", "open")
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    text = render_modelfile(model, quant="Q8_0", num_ctx=8192, system="Svar på nynorsk.")
    by_name = {i.name: i for i in parse_modelfile(text)}
    assert by_name["from"].args == "huggingface.co/NbAiLab/borealis-open-1b-gguf:Q8_0"
    assert by_name["system"].args == "Svar på nynorsk."
    assert "PARAMETER num_ctx 8192" in text
    local = {i.name: i for i in parse_modelfile(render_modelfile(model, from_path=gguf))}
    assert local["from"].args == str(gguf)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_ctx": 200_000}, "over borealis-4b's context length 131072"),
        ({"num_ctx": -1}, "positive"),
        ({"system": 'say """hi"""'}, "cannot quote"),
        ({"quant": "Q4_0"}, "unknown quantisation"),
    ],
)
def test_bad_options_are_clear_errors(kwargs, message):
    with pytest.raises(BorealisError, match=message):
        render_modelfile(get_model("4b"), **kwargs)


def test_llama_server_presets_have_a_complete_section_per_model():
    parser = configparser.ConfigParser()
    parser.read_string("[top]\n" + (MODELFILES / "llama-server" / "borealis.ini").read_text())
    assert parser["top"]["version"] == "1"
    sections = [s for s in parser.sections() if s != "top"]
    assert sections == [m.name for m in MODELS]
    for model in MODELS:
        section = parser[model.name]
        assert section["hf-repo"] == f"{model.gguf_repo}:Q4_K_M"
        assert section["jinja"] == "true"
        assert (REPO / section["chat-template-file"]).read_text() == templates.jinja_template()
        assert int(section["ctx-size"]) == model.default_num_ctx
        assert float(section["temp"]) == SAMPLING.temperature
        assert int(section["top-k"]) == SAMPLING.top_k
        assert float(section["top-p"]) == SAMPLING.top_p


# -- the hub-side files for Ollama (template, params) ------------------------------------


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_hub_files_carry_the_modelfiles_template_and_parameters(model):
    import json

    from borealis_local.modelfile import hub_files

    files = hub_files(model)
    assert set(files) == {"template", "params"}  # no system file: Borealis needs none
    instructions = parse_modelfile(render_modelfile(model))
    (template,) = [i.args for i in instructions if i.name == "template"]
    assert files["template"] == template == templates.ollama_template()
    written = {}
    for i in instructions:
        if i.name == "parameter":
            written.setdefault(i.param, []).append(i.args)
    params = json.loads(files["params"])
    assert params["stop"] == written["stop"] == [CHAT_FORMAT.end_of_turn]
    for name in ("temperature", "top_k", "top_p", "num_ctx"):
        assert float(params[name]) == float(written[name][-1]), name
    assert params["num_ctx"] == model.default_num_ctx


def test_the_hub_files_command_writes_every_repo(tmp_path):
    from borealis_local.cli import main

    assert main(["modelfile", "--hub-files", str(tmp_path)]) == 0
    for model in MODELS:
        folder = tmp_path / model.gguf_repo
        assert sorted(p.name for p in folder.iterdir()) == ["params", "template"]
        assert (folder / "template").read_text() == templates.ollama_template()
