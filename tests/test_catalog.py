"""The catalog: names, repos, files, licences and shapes, checked against a real GGUF."""

from __future__ import annotations

import pytest

from borealis_local import catalog
from borealis_local.catalog import MODELS, QUANTS, SIZES, get_model, parse_name
from borealis_local.errors import UnknownModelError


def test_every_size_in_both_variants():
    assert len(MODELS) == 10
    assert {(m.size, m.variant) for m in MODELS} == {
        (s, v) for s in SIZES for v in ("full", "open")
    }


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.name)
def test_names_repos_and_files_follow_the_hub(model):
    stem = "borealis-" + ("" if model.variant == "full" else "open-") + model.size
    assert model.name == stem
    assert model.repo == f"NbAiLab/{stem}"
    assert model.gguf_repo == f"NbAiLab/{stem}-gguf"
    assert [model.gguf_filename(q) for q in QUANTS] == [f"{stem}-{q}.gguf" for q in QUANTS]
    assert model.hub_reference() == f"huggingface.co/NbAiLab/{stem}-gguf:Q4_K_M"


def test_licences_and_gating_by_variant():
    for model in MODELS:
        if model.variant == "full":
            assert model.gated and model.license.url == "https://ai.nb.no/license/"
            assert len(model.license.restrictions) == 2
            assert "press publications" in model.license.restrictions[1]
        else:
            assert not model.gated and model.license.url == "https://ai.google.dev/gemma/terms"
            assert model.license.restrictions == ()


def test_modality_and_context():
    assert [get_model(s).modality for s in SIZES] == ["text"] * 2 + ["text+image"] * 3
    assert [get_model(s).context_length for s in SIZES] == [32768] * 2 + [131072] * 3
    for model in MODELS:
        assert 8192 <= model.default_num_ctx <= model.context_length


def test_the_sizes_that_see_images_have_gemma3s_vision_tower():
    assert [get_model(s).vision is not None for s in SIZES] == [False] * 2 + [True] * 3
    for model in MODELS:
        assert model.modality == ("text" if model.vision is None else "text+image")
        listed = model.to_dict()["vision"]
        assert listed == (None if model.vision is None else model.vision.to_dict())
    tower = get_model("4b").vision
    # Google's vision_config for gemma-3-4b/12b/27b-it (siglip_vision_model).
    assert (tower.image_size, tower.patch_size, tower.layers) == (896, 14, 27)
    assert (tower.hidden, tower.ffn, tower.heads) == (1152, 4304, 16)
    assert (tower.encoder, tower.projector_type) == ("SigLIP", "gemma3")
    # A 64x64 patch grid, average-pooled 4x4 (clip.cpp's n_merge for gemma3) into
    # Google's mm_tokens_per_image.
    assert tower.patches == 64 * 64
    assert tower.tokens_per_image == 256


@pytest.mark.parametrize(
    ("name", "size", "variant", "quant"),
    [
        ("borealis-open-4b:Q8_0", "4b", "open", "Q8_0"),
        ("borealis-12b", "12b", "full", "Q4_K_M"),
        ("4b:q4_k_m", "4b", "full", "Q4_K_M"),
        ("open-270m", "270m", "open", "Q4_K_M"),
        ("Borealis-27B:bf16", "27b", "full", "BF16"),
    ],
)
def test_parse_name(name, size, variant, quant):
    model, parsed_quant = parse_name(name)
    assert (model.size, model.variant, parsed_quant) == (size, variant, quant)


@pytest.mark.parametrize(
    ("name", "message"),
    [("borealis-7b", "unknown model"), ("borealis-4b:Q4_0", "unknown quantisation")],
)
def test_parse_name_errors_say_what_exists(name, message):
    with pytest.raises(UnknownModelError, match=message) as error:
        parse_name(name)
    assert "270m" in str(error.value) or "Q4_K_M" in str(error.value)


def test_kv_cache_estimate_follows_llama_cpp_sizing():
    shape = catalog.SHAPES["270m"]  # 3 global + 15 sliding layers, 1 KV head of 256
    per_cell = 2 * 1 * 256 * 2
    swa_cells = 1024  # window 512 + ubatch 512, already a multiple of 256
    assert shape.kv_cache_bytes(4096) == (3 * 4096 + 15 * swa_cells) * per_cell
    assert shape.kv_cache_bytes(512) == 18 * 512 * per_cell  # the window is capped by n_ctx


def test_270m_shape_matches_a_real_gemma3_gguf(llama_cpp, gemma_gguf):
    """The stand-in is Gemma 3 270M: the same architecture as borealis-270m."""
    # llama.cpp's loader reads the header in milliseconds; gguf's GGUFReader takes
    # about 20 s on this 262k-token vocabulary.
    llm = llama_cpp.Llama(model_path=str(gemma_gguf), vocab_only=True, verbose=False)
    meta = llm.metadata
    shape = catalog.SHAPES["270m"]
    assert meta["general.architecture"] == "gemma3"
    assert int(meta["gemma3.block_count"]) == shape.layers
    assert int(meta["gemma3.embedding_length"]) == shape.hidden
    assert int(meta["gemma3.attention.head_count"]) == shape.heads
    assert int(meta["gemma3.attention.head_count_kv"]) == shape.kv_heads
    assert int(meta["gemma3.attention.key_length"]) == shape.head_dim
    assert int(meta["gemma3.feed_forward_length"]) == shape.ffn
    assert int(meta["gemma3.attention.sliding_window"]) == shape.sliding_window
    assert int(meta["gemma3.context_length"]) == shape.context_length
    assert llm.n_vocab() == shape.vocab


def test_a_runtimes_model_name_is_found_in_the_catalog_when_it_names_one():
    open_4b = get_model("4b", "open")
    for name in ("borealis-open-4b", "borealis-open-4b:Q8_0", open_4b.ollama_tag,
                 f"/models/{open_4b.gguf_filename('Q8_0')}", "huggingface.co/x/borealis-open-4b"):
        assert catalog.model_named(name) == open_4b, name
    assert catalog.model_named("borealis-1b").vision is None
    assert catalog.model_named("borealis-12b").vision == catalog.GEMMA3_VISION
    for name in ("gemma-3-270m-q4_k_m.gguf", "llama3:8b", "vision"):
        assert catalog.model_named(name) is None, name
