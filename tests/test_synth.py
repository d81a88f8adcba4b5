"""`borealis synth`: random-weight GGUFs in a Borealis size's exact Gemma 3 shape.

The 270m shape is synthesised once (about 15 s): its tensor table must equal the
stand-in's (a real Gemma 3 270M quantised to Q4_K_M by llama.cpp), its tokenizer be
the stand-in's, and llama.cpp must load it and generate. Larger shapes take minutes
and GBs: set BOREALIS_SYNTH_LARGE=1 to run the 1b test too.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import gguf
import pytest

from borealis_local.bench import synth
from borealis_local.bench.tensors import tensor_bytes, tensor_types
from borealis_local.catalog import GEMMA3_VISION, SHAPES
from borealis_local.errors import BorealisError, InvalidModelFileError


@pytest.fixture(scope="module")
def synthetic_270m(gemma_gguf, llama_cpp, tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth")
    steps: list[str] = []
    path = synth.synthesize("270m", "Q4_K_M", gemma_gguf, folder, threads=2,
                            progress=steps.append)
    yield path, steps
    path.unlink(missing_ok=True)


def test_it_is_named_and_labelled_as_no_language_model(synthetic_270m):
    path, steps = synthetic_270m
    assert path.name == "borealis-270m-Q4_K_M-synthetic.gguf"
    metadata = synth.read_header(path).metadata
    assert metadata["general.name"].value.startswith("SYNTHETIC")
    assert "NOT a language model" in metadata["general.description"].value
    assert "not-a-language-model" in metadata["general.tags"].value
    assert [step.split()[0] for step in steps] == ["copying", "writing", "quantising"]
    assert not list(path.parent.glob("*.tmp"))  # the F16 scratch file is gone


def test_its_tensor_table_is_the_real_models(synthetic_270m, gemma_gguf):
    made = [(t.name, t.dims, t.type) for t in synth.read_header(synthetic_270m[0]).tensors]
    real = [(t.name, t.dims, t.type) for t in synth.read_header(gemma_gguf).tensors]
    assert made == real
    assert made == [(s.name, s.dims, q) for s, q in tensor_types(SHAPES["270m"], "Q4_K_M")]


def test_it_has_the_real_models_metadata_and_tokenizer(synthetic_270m, gemma_gguf):
    made = synth.read_header(synthetic_270m[0]).metadata
    real = synth.read_header(gemma_gguf).metadata
    assert set(made) >= set(real)
    for key, field in real.items():
        if key.startswith(("gemma3.", "tokenizer.")) or key in ("general.file_type",):
            assert made[key] == field, key


def test_llama_cpp_loads_it_and_generates(synthetic_270m, gemma_gguf, llama_cpp):
    model = llama_cpp.Llama(str(synthetic_270m[0]), n_ctx=512, n_threads=2, verbose=False)
    reference = llama_cpp.Llama(str(gemma_gguf), n_ctx=512, n_threads=2, vocab_only=True,
                                verbose=False)
    try:
        text = "Nordlyset er synleg om vinteren i Tromsø".encode()
        assert model.tokenize(text) == reference.tokenize(text)
        result = model.create_completion("Nordlyset", max_tokens=8, temperature=0.0, seed=1)
        assert result["usage"]["completion_tokens"] >= 1
        assert result["choices"][0]["finish_reason"] in ("stop", "length")
    finally:
        model.close()
        reference.close()


@pytest.mark.skipif(
    os.environ.get("BOREALIS_SYNTH_LARGE") != "1",
    reason="makes a 0.8 GB file in about a minute: set BOREALIS_SYNTH_LARGE=1",
)
def test_a_1b_shape_loads_and_runs(gemma_gguf, llama_cpp, tmp_path):
    path = synth.synthesize("1b", "Q4_K_M", gemma_gguf, tmp_path)
    try:
        made = [(t.name, t.dims, t.type) for t in synth.read_header(path).tensors]
        assert made == [(s.name, s.dims, q) for s, q in tensor_types(SHAPES["1b"], "Q4_K_M")]
        model = llama_cpp.Llama(str(path), n_ctx=512, n_threads=2, verbose=False)
        assert model.create_completion("Hei", max_tokens=4)["usage"]["completion_tokens"] >= 1
        model.close()
    finally:
        path.unlink(missing_ok=True)


def test_a_larger_embedding_gets_unused_tokens(gemma_gguf, monkeypatch):
    """The multimodal sizes' embedding may have more rows than the text tokenizer."""
    monkeypatch.setitem(SHAPES, "4b", dataclasses.replace(SHAPES["4b"], vocab=262_208))
    source = synth.read_header(gemma_gguf).metadata
    made = synth.synthetic_metadata("4b", source, gemma_gguf.name)
    tokens = made["tokenizer.ggml.tokens"].value
    assert len(tokens) == len(made["tokenizer.ggml.scores"].value) == 262_208
    assert tokens[:262_144] == source["tokenizer.ggml.tokens"].value
    assert made["tokenizer.ggml.token_type"].value[-1] == gguf.TokenType.UNUSED
    assert made["gemma3.rope.scaling.type"].value == "linear"
    assert made["gemma3.embedding_length"].value == 2560


def test_the_tokenizer_must_come_from_gemma_3(gemma_gguf):
    source = synth.read_header(gemma_gguf).metadata
    foreign = source | {"general.architecture": synth.Field(gguf.GGUFValueType.STRING, "llama")}
    with pytest.raises(InvalidModelFileError, match="not a Gemma 3 GGUF"):
        synth.synthetic_metadata("1b", foreign, "llama.gguf")
    no_tokens = {k: v for k, v in source.items() if k != "tokenizer.ggml.tokens"}
    with pytest.raises(InvalidModelFileError, match="has no tokenizer"):
        synth.synthetic_metadata("1b", no_tokens, "x.gguf")


# -- the command --------------------------------------------------------------------------


def _run(argv: list[str]) -> int:
    from borealis_local.bench.advice_cli import register

    parser = argparse.ArgumentParser(prog="borealis")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_the_file_name_must_say_synthetic(gemma_gguf, tmp_path):
    with pytest.raises(BorealisError, match="-synthetic.gguf"):
        _run(["synth", "270m", "--tokenizer-from", str(gemma_gguf),
              "-o", str(tmp_path / "borealis-270m-Q4_K_M.gguf")])
    assert not list(tmp_path.iterdir())


def test_bad_sizes_quants_and_sources_are_named(gemma_gguf, tmp_path):
    with pytest.raises(BorealisError, match="unknown size '3b'"):
        _run(["synth", "3b", "--tokenizer-from", str(gemma_gguf), "-o", str(tmp_path)])
    with pytest.raises(BorealisError, match="unknown quantisation"):
        _run(["synth", "1b", "--quant", "Q4_0", "--tokenizer-from", str(gemma_gguf)])
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    with pytest.raises(InvalidModelFileError, match="not a GGUF"):
        _run(["synth", "1b", "--tokenizer-from", str(text), "-o", str(tmp_path)])


def test_a_full_disk_is_found_before_writing(gemma_gguf, tmp_path, monkeypatch):
    usage = synth.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(synth.shutil, "disk_usage", lambda _: usage._replace(free=10**8))
    with pytest.raises(BorealisError, match=r"needs \d+\.\d GB free"):
        synth.synthesize("1b", "Q4_K_M", gemma_gguf, tmp_path)
    assert not list(tmp_path.iterdir())


def test_the_command_says_it_is_not_a_model(gemma_gguf, tmp_path, capsys, monkeypatch):
    def fake(size, quant, source, output, **options):
        path = Path(output) / synth.synthetic_filename(size, quant)
        path.write_bytes(b"GGUF")
        options["progress"]("quantising")
        return path

    monkeypatch.setattr(synth, "synthesize", fake)
    assert _run(["synth", "1B", "--quant", "q8_0", "--tokenizer-from", str(gemma_gguf),
                 "-o", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "NOT a language model" in out and "borealis-1b" in out
    assert "synth: quantising" in err


def test_a_failed_quantisation_shows_llama_cpps_log(tmp_path, llama_cpp):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(BorealisError, match="could not quantise broken.gguf"):
        synth.quantize(broken, tmp_path / "out-synthetic.gguf", "Q4_K_M")
    assert not (tmp_path / "out-synthetic.gguf").exists()


# -- the synthetic vision projector --------------------------------------------------------

# One encoder block of Gemma 3's 27: a 54 MB file (the full depth is 0.85 GB).
PROJECTOR_LAYERS = 1


@pytest.fixture(scope="module")
def projector_640(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mmproj")
    path = synth.synthesize_projector(folder, SHAPES["270m"].hidden, layers=PROJECTOR_LAYERS)
    yield path
    path.unlink(missing_ok=True)


def test_the_projector_is_named_and_labelled_as_no_model(projector_640):
    assert projector_640.name == "mmproj-gemma3-640-1layers-F16-synthetic.gguf"
    metadata = synth.read_header(projector_640).metadata
    assert metadata["general.architecture"].value == "clip"
    assert metadata["general.type"].value == "mmproj"
    assert metadata["general.name"].value.startswith("SYNTHETIC")
    assert "not a model" in metadata["general.name"].value
    description = metadata["general.description"].value
    assert "NOT a model" in description
    assert "REDUCED DEPTH: 1 of Gemma 3's 27 encoder blocks" in description
    assert {"synthetic", "not-a-model", "reduced-depth"} <= set(metadata["general.tags"].value)


def test_the_projector_has_the_keys_and_tensors_clip_cpp_reads(projector_640):
    header = synth.read_header(projector_640)
    values = {key: field.value for key, field in header.metadata.items()}
    assert values["clip.projector_type"] == "gemma3"
    assert values["clip.has_vision_encoder"] is True
    assert values["clip.vision.projection_dim"] == 640
    assert values["clip.vision.block_count"] == PROJECTOR_LAYERS
    tower = GEMMA3_VISION
    assert (values["clip.vision.image_size"], values["clip.vision.patch_size"]) == (896, 14)
    assert values["clip.vision.embedding_length"] == tower.hidden
    assert values["clip.vision.feed_forward_length"] == tower.ffn
    assert values["clip.vision.attention.head_count"] == tower.heads
    assert values["clip.vision.image_mean"] == values["clip.vision.image_std"] == [0.5] * 3

    made = {t.name: (t.dims, t.type) for t in header.tensors}
    assert len(made) == 3 + 16 * PROJECTOR_LAYERS + 4
    f16, f32 = gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.F32
    # clip.cpp takes the projection width from input_projection's first dimension and
    # checks it against the text model's hidden size.
    assert made["mm.input_projection.weight"] == ((640, 1152), f16)
    assert made["v.position_embd.weight"] == ((1152, 64 * 64), f32)
    assert made["v.patch_embd.weight"] == ((14, 14, 3, 1152), f32)
    assert made["v.blk.0.ffn_up.weight"] == ((1152, 4304), f16)
    assert made["v.blk.0.ffn_down.weight"] == ((4304, 1152), f16)
    assert made["v.blk.0.ln1.bias"] == ((1152,), f32)
    assert "v.blk.1.attn_q.weight" not in made
    data = sum(tensor_bytes(dims, ggml_type) for dims, ggml_type in made.values())
    assert data == synth.projector_bytes(640, PROJECTOR_LAYERS)
    assert 0 < projector_640.stat().st_size - data < 64 * 1024  # the header and padding


def test_libmtmd_loads_the_projector_only_for_its_text_width(
    projector_640, gemma_gguf, llama_cpp, tmp_path
):
    """llama.cpp's multimodal library (what llama-cpp-python's MTMDChatHandler and
    llama-server use) opens the projector next to the stand-in, and refuses one made for
    4b's text width."""
    from llama_cpp import mtmd_cpp

    wide = synth.synthesize_projector(tmp_path, SHAPES["4b"].hidden, layers=PROJECTOR_LAYERS)
    model = llama_cpp.Llama(str(gemma_gguf), n_ctx=256, n_threads=2, verbose=False)
    params = mtmd_cpp.mtmd_context_params_default()
    params.use_gpu, params.n_threads, params.warmup = False, 2, False
    try:
        context = mtmd_cpp.mtmd_init_from_file(str(projector_640).encode(), model.model, params)
        assert context is not None
        assert mtmd_cpp.mtmd_support_vision(context)
        mtmd_cpp.mtmd_free(context)
        assert mtmd_cpp.mtmd_init_from_file(str(wide).encode(), model.model, params) is None
    finally:
        model.close()


def test_projector_depth_and_width_are_checked(tmp_path):
    with pytest.raises(BorealisError, match="from 1 to 27, not 28"):
        synth.synthesize_projector(tmp_path, 640, layers=28)
    with pytest.raises(BorealisError, match="above 0"):
        synth.synthesize_projector(tmp_path, 0)
    with pytest.raises(BorealisError, match="-synthetic.gguf"):
        synth.synthesize_projector(tmp_path / "mmproj-model-f16.gguf", 640, layers=1)
    assert not list(tmp_path.iterdir())


def test_the_mmproj_command_takes_a_size_or_a_width(tmp_path, capsys, monkeypatch):
    calls = []

    def fake(output, text_hidden, **options):
        calls.append((text_hidden, options["layers"]))
        path = Path(output) / synth.synthetic_projector_filename(text_hidden, options["layers"])
        path.write_bytes(b"GGUF")
        return path

    monkeypatch.setattr(synth, "synthesize_projector", fake)
    assert _run(["synth", "--mmproj", str(tmp_path), "--text-hidden", "640",
                 "--layers", "2"]) == 0  # fmt: skip
    assert "REDUCED to 2 of 27" in capsys.readouterr().out
    assert _run(["synth", "4B", "--mmproj", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "NOT a model" in out and "text hidden size 2560" in out and "REDUCED" not in out
    assert calls == [(640, 2), (2560, 27)]
    for argv in (
        ["synth", "--mmproj", str(tmp_path)],
        ["synth", "4b", "--text-hidden", "640", "--mmproj", str(tmp_path)],
    ):
        with pytest.raises(BorealisError, match="give SIZE"):
            _run(argv)
    with pytest.raises(BorealisError, match="--tokenizer-from"):
        _run(["synth", "1b"])
    with pytest.raises(BorealisError, match="add --mmproj"):
        _run(["synth", "1b", "--layers", "2"])
