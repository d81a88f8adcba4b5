"""Shape-faithful synthetic models: Gemma 3 of one Borealis size, with random weights.

`synthesize("1b", "Q4_K_M", tokenizer_from=stand_in)` writes a GGUF with exactly that
size's architecture (the catalog's shapes, every tensor llama.cpp's gemma3 loader
reads, the metadata it needs), the real Gemma 3 tokenizer copied from another GGUF,
and random weights quantised by llama.cpp itself (`llama_model_quantize`), so the
tensor types are the ones a real file of that size and quant has. Speed and memory
do not depend on the weights' values: such a file plans hardware, checks the memory
estimator and benchmarks a 1b-shaped model in CI without downloading the model.

It is NOT a language model: its output is noise. The file name ends in
`-synthetic.gguf`, and its `general.name` and `general.description` say so.

`synthesize_projector(output, text_hidden)` writes the other half of a 4b+ model: a
Gemma 3 vision projector (mmproj) GGUF with the tensors and `clip.*` keys llama.cpp's
libmtmd reads for its `gemma3` projector (SigLIP encoder, average pooling, soft-embedding
norm, projection to `text_hidden`), random F16 weights, and labels that say it is
synthetic and not a model. `layers` below Gemma 3's 27 makes a reduced-depth file for
fast tests; the file's description states the reduction. The image's token count, the
projection width and the encode path are the real ones; the embeddings are noise.

How: the random weights are written as F16 (norms F32) with `gguf.GGUFWriter`, one
tensor at a time (a 4b-shaped F16 file is 7.8 GB: it is never held in memory), next
to the output; llama.cpp quantises that file and it is deleted. The F16 values are
windows into one pool of random numbers: drawing billions of fresh ones costs minutes
and buys nothing, since neither speed nor memory depends on them.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import gguf
import numpy as np

from borealis_local.bench.tensors import (
    TensorSpec,
    gemma3_tensors,
    parameter_count,
    tensor_bytes,
    tensor_types,
)
from borealis_local.catalog import (
    GEMMA3_VISION,
    QUANTS,
    SHAPES,
    SIZES,
    Shape,
    VisionTower,
    check_quant,
)
from borealis_local.errors import BorealisError, InvalidModelFileError
from borealis_local.gguf_header import Field, read_header

ARCH = "gemma3"
SUFFIX = "-synthetic.gguf"
NOT_A_MODEL = (
    "SYNTHETIC: random weights in the shape of Gemma 3 {size} (borealis-{size}), made by "
    "`borealis synth` for benchmarks and memory planning. NOT a language model: its output "
    "is noise. Tokenizer copied from {source}."
)
# llama.cpp's file types for the catalog's quants (llama.h: enum llama_ftype).
FILE_TYPES = {
    "BF16": gguf.LlamaFileType.MOSTLY_BF16,
    "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    "Q6_K": gguf.LlamaFileType.MOSTLY_Q6_K,
    "Q5_K_M": gguf.LlamaFileType.MOSTLY_Q5_K_M,
    "Q4_K_M": gguf.LlamaFileType.MOSTLY_Q4_K_M,
    "Q3_K_M": gguf.LlamaFileType.MOSTLY_Q3_K_M,
    "Q2_K": gguf.LlamaFileType.MOSTLY_Q2_K,
}
# Gemma 3's constants (Google's configs): RMS norm epsilon, RoPE base of the global
# layers (llama.cpp knows the local layers' 10,000 for gemma3).
RMS_NORM_EPS = 1e-6
ROPE_FREQ_BASE = 1_000_000.0
# Gemma 3's large sizes scale RoPE on global layers linearly by 8 (Google's configs).
LONG_CONTEXT_ROPE_SCALE = 8.0
WEIGHT_STD = 0.02
POOL_VALUES = 1 << 24


# -- the synthetic file ------------------------------------------------------------------


def synthetic_filename(size: str, quant: str) -> str:
    return f"borealis-{size}-{check_quant(quant)}{SUFFIX}"


def synthesize(
    size: str,
    quant: str,
    tokenizer_from: str | Path,
    output: str | Path | None = None,
    *,
    threads: int | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write a random-weight GGUF of `size`'s Gemma 3 shape, quantised to `quant`.

    `output` is a file name ending in `-synthetic.gguf` or a folder (default: the
    current one) for `borealis-SIZE-QUANT-synthetic.gguf`.
    """
    from borealis_local.runtime.gguf_check import check_gguf

    size, quant = _check_size(size), check_quant(quant)
    output = _output_path(output, synthetic_filename(size, quant))
    source = check_gguf(tokenizer_from).path
    _check_room(output, size, quant)
    say = progress or (lambda message: None)
    say(f"copying the Gemma 3 tokenizer from {source.name}")
    metadata = synthetic_metadata(size, read_header(source).metadata, source.name)
    scratch = output.with_name(output.name + ".f16.tmp")
    try:
        say(f"writing random F16 weights in the {size} shape ({scratch.name})")
        write_random_f16(scratch, SHAPES[size], metadata, seed=seed)
        say(f"quantising to {quant} with llama.cpp")
        quantize(scratch, output, quant, threads=threads)
    finally:
        scratch.unlink(missing_ok=True)
    return output


def _output_path(output: str | Path | None, default_name: str) -> Path:
    path = Path(output).expanduser() if output else Path.cwd()
    if path.is_dir():
        return path / default_name
    if not path.name.endswith(SUFFIX):
        raise BorealisError(
            f"name the file …{SUFFIX} (for example {default_name}), so "
            "that nobody takes its random weights for a model, or give a folder"
        )
    if not path.parent.is_dir():
        raise BorealisError(f"no such folder: {path.parent}")
    return path


def _check_room(output: Path, size: str, quant: str) -> None:
    """The F16 scratch file and the result must both fit on the output's disk."""
    needed = 2 * parameter_count(SHAPES[size]) + sum(
        tensor_bytes(spec.dims, ggml_type) for spec, ggml_type in tensor_types(SHAPES[size], quant)
    )
    free = shutil.disk_usage(output.parent).free
    if needed > free:
        raise BorealisError(
            f"a {size}-shaped {quant} file needs {needed / 1e9:.1f} GB free in {output.parent} "
            f"while it is made (an F16 scratch copy, then the result); {free / 1e9:.1f} GB "
            "are free — give -o a folder on a disk with more room"
        )


def _check_size(size: str) -> str:
    if size.lower() not in SIZES:
        raise BorealisError(f"unknown size {size!r}: choose one of {', '.join(SIZES)}")
    return size.lower()


# What is copied from the tokenizer's GGUF besides the tokenizer: the file's type and
# the licence its tokenizer comes under. Its other general.* keys (name, URLs, base
# models) describe another model, and the architecture comes from the catalog.
COPIED_GENERAL_KEYS = ("general.type", "general.license", "general.license.name",
                       "general.license.link")


def synthetic_metadata(
    size: str, source: dict[str, Field], source_name: str
) -> dict[str, Field]:
    """The tokenizer of `source` verbatim, `size`'s architecture, and labels that say
    the file is synthetic."""
    architecture = source.get(gguf.Keys.General.ARCHITECTURE)
    if architecture is None or architecture.value != ARCH:
        raise InvalidModelFileError(
            f"{source_name} is not a Gemma 3 GGUF: the tokenizer must come from a Gemma 3 "
            "model (the stand-in gemma-3-270m-q4_k_m.gguf or any borealis-*.gguf)"
        )
    if "tokenizer.ggml.tokens" not in source:
        raise InvalidModelFileError(f"{source_name} has no tokenizer to copy")
    kept = {
        key: field
        for key, field in source.items()
        if key.startswith("tokenizer.") or key in COPIED_GENERAL_KEYS
    }
    return (
        kept
        | _vocabulary(source, SHAPES[_check_size(size)].vocab, source_name)
        | architecture_fields(size)
        | _label_fields(size, source_name)
    )


def _vocabulary(source: dict[str, Field], vocab: int, source_name: str) -> dict[str, Field]:
    """The token lists, padded with unused tokens when the shape's embedding has more rows
    (the multimodal sizes' 262,208 against the text sizes' 262,144, for instance)."""
    tokens = source["tokenizer.ggml.tokens"].value
    if len(tokens) > vocab:
        raise InvalidModelFileError(
            f"{source_name} has {len(tokens):,} tokens, more than the {vocab:,} rows of this "
            "shape's embedding: take the tokenizer from a Gemma 3 GGUF"
        )
    padding = vocab - len(tokens)
    filler = {
        "tokenizer.ggml.tokens": [f"<unused_synthetic_{i}>" for i in range(padding)],
        "tokenizer.ggml.scores": [0.0] * padding,
        "tokenizer.ggml.token_type": [int(gguf.TokenType.UNUSED)] * padding,
    }
    return {
        key: Field(field.type, field.value + filler[key], field.sub_type)
        for key, field in source.items()
        if key in filler
    }


def architecture_fields(size: str) -> dict[str, Field]:
    """The gemma3 metadata llama.cpp's loader reads, with `size`'s shape from the catalog."""
    shape = SHAPES[_check_size(size)]
    u32, f32 = gguf.GGUFValueType.UINT32, gguf.GGUFValueType.FLOAT32
    text = gguf.GGUFValueType.STRING
    llm, attention, rope = gguf.Keys.LLM, gguf.Keys.Attention, gguf.Keys.Rope
    fields = {
        llm.CONTEXT_LENGTH: Field(u32, shape.context_length),
        llm.EMBEDDING_LENGTH: Field(u32, shape.hidden),
        llm.BLOCK_COUNT: Field(u32, shape.layers),
        llm.FEED_FORWARD_LENGTH: Field(u32, shape.ffn),
        attention.HEAD_COUNT: Field(u32, shape.heads),
        attention.HEAD_COUNT_KV: Field(u32, shape.kv_heads),
        attention.KEY_LENGTH: Field(u32, shape.head_dim),
        attention.VALUE_LENGTH: Field(u32, shape.head_dim),
        attention.SLIDING_WINDOW: Field(u32, shape.sliding_window),
        attention.LAYERNORM_RMS_EPS: Field(f32, RMS_NORM_EPS),
        rope.FREQ_BASE: Field(f32, ROPE_FREQ_BASE),
    }
    if shape.context_length > 32_768:
        fields[rope.SCALING_TYPE] = Field(text, "linear")
        fields[rope.SCALING_FACTOR] = Field(f32, LONG_CONTEXT_ROPE_SCALE)
    return {key.format(arch=ARCH): field for key, field in fields.items()}


def _label_fields(size: str, source_name: str) -> dict[str, Field]:
    text = gguf.GGUFValueType.STRING
    return {
        gguf.Keys.General.NAME: Field(text, f"SYNTHETIC borealis-{size} shape (random weights)"),
        gguf.Keys.General.BASENAME: Field(text, "borealis-synthetic"),
        gguf.Keys.General.SIZE_LABEL: Field(text, size.upper()),
        gguf.Keys.General.DESCRIPTION: Field(
            text, NOT_A_MODEL.format(size=size, source=source_name)
        ),
        gguf.Keys.General.TAGS: Field(
            gguf.GGUFValueType.ARRAY, ["synthetic", "random-weights", "not-a-language-model"], text
        ),
    }


def write_random_f16(
    path: Path, shape: Shape, metadata: dict[str, Field], *, seed: int = 0, data: bool = True
) -> None:
    """A GGUF with the gemma3 tensors of `shape`: random F16 matrices, F32 norms of ones.

    With `data=False` the tensor data is a hole of the right length (a sparse file that
    takes no disk), enough for llama.cpp's quantiser to plan a dry run.
    """
    specs = gemma3_tensors(shape)
    writer = gguf.GGUFWriter(path, ARCH)
    for key, field in metadata.items():
        if key != gguf.Keys.General.ARCHITECTURE:
            writer.add_key_value(key, field.value, field.type, field.sub_type)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    for spec in specs:
        dtype = _dtype(spec)
        writer.add_tensor_info(spec.name, spec.dims[::-1], dtype, spec.elements * dtype.itemsize)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        if data:
            rng = np.random.default_rng(seed)
            pool = rng.standard_normal(POOL_VALUES, dtype=np.float32) * WEIGHT_STD
            pool = pool.astype(np.float16)
            for spec in specs:
                writer.write_tensor_data(_values(spec, pool, rng))
        else:
            handle = writer.fout[0]
            writer.write_padding(handle, handle.tell())
            sizes = [spec.elements * _dtype(spec).itemsize for spec in specs]
            padded = sum(writer.ggml_pad(n, writer.data_alignment) for n in sizes)
            handle.truncate(handle.tell() + padded)
    finally:
        writer.close()


def _dtype(spec: TensorSpec) -> np.dtype:
    return np.dtype(np.float16 if spec.is_matrix else np.float32)


def _values(spec: TensorSpec, pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if not spec.is_matrix:
        return np.ones(spec.dims[::-1], dtype=np.float32)
    start = int(rng.integers(len(pool)))
    end = start + spec.elements
    repeats = -(-end // len(pool))
    source = np.tile(pool, repeats) if repeats > 1 else pool
    return source[start:end].reshape(spec.dims[::-1])


# -- the synthetic vision projector -------------------------------------------------------

PROJECTOR_NOT_A_MODEL = (
    "SYNTHETIC: random weights in the shape of Gemma 3's vision projector (mmproj: {encoder} "
    "encoder, {image_size} px, {tokens} soft tokens per image) projecting to a text hidden "
    "size of {text_hidden}, made by `borealis synth --mmproj` for tests and planning. NOT a "
    "model: the image embeddings it gives are noise. {depth}"
)


def synthetic_projector_filename(text_hidden: int, layers: int = GEMMA3_VISION.layers) -> str:
    depth = "" if layers == GEMMA3_VISION.layers else f"-{layers}layers"
    return f"mmproj-gemma3-{text_hidden}{depth}-F16{SUFFIX}"


def projector_tensors(
    text_hidden: int, layers: int = GEMMA3_VISION.layers, tower: VisionTower = GEMMA3_VISION
) -> list[TensorSpec]:
    """The tensors clip.cpp loads for a `gemma3` projector, dims in ggml order.

    Names and shapes as convert_hf_to_gguf writes them from Gemma 3's SigLIP tower and
    multi-modal projector; `mm.input_projection` is (text hidden, vision hidden), which
    is how clip.cpp learns the width it must match in the text model.
    """
    hidden, ffn, patch = tower.hidden, tower.ffn, tower.patch_size
    tensors = [
        TensorSpec("v.patch_embd.weight", (patch, patch, 3, hidden)),
        TensorSpec("v.patch_embd.bias", (hidden,)),
        TensorSpec("v.position_embd.weight", (hidden, tower.patches)),
    ]
    per_layer = (
        ("attn_q.weight", (hidden, hidden)), ("attn_q.bias", (hidden,)),
        ("attn_k.weight", (hidden, hidden)), ("attn_k.bias", (hidden,)),
        ("attn_v.weight", (hidden, hidden)), ("attn_v.bias", (hidden,)),
        ("attn_out.weight", (hidden, hidden)), ("attn_out.bias", (hidden,)),
        ("ln1.weight", (hidden,)), ("ln1.bias", (hidden,)),
        ("ln2.weight", (hidden,)), ("ln2.bias", (hidden,)),
        ("ffn_up.weight", (hidden, ffn)), ("ffn_up.bias", (ffn,)),
        ("ffn_down.weight", (ffn, hidden)), ("ffn_down.bias", (hidden,)),
    )  # fmt: skip
    for layer in range(layers):
        tensors += [TensorSpec(f"v.blk.{layer}.{n}", d, layer) for n, d in per_layer]
    return tensors + [
        TensorSpec("v.post_ln.weight", (hidden,)),
        TensorSpec("v.post_ln.bias", (hidden,)),
        TensorSpec("mm.input_projection.weight", (text_hidden, hidden)),
        TensorSpec("mm.soft_emb_norm.weight", (hidden,)),
    ]


def _projector_dtype(spec: TensorSpec) -> np.dtype:
    # As convert_hf_to_gguf's F16 mmproj: the embeddings stay F32, vectors are F32.
    embedding = spec.name.startswith(("v.patch_embd.", "v.position_embd."))
    return np.dtype(np.float16 if spec.is_matrix and not embedding else np.float32)


def projector_bytes(text_hidden: int, layers: int = GEMMA3_VISION.layers) -> int:
    """The tensor data of a synthetic projector (the file adds a few KB of header)."""
    specs = projector_tensors(text_hidden, layers)
    return sum(spec.elements * _projector_dtype(spec).itemsize for spec in specs)


def synthesize_projector(
    output: str | Path | None,
    text_hidden: int,
    *,
    layers: int = GEMMA3_VISION.layers,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write a random-weight Gemma 3 vision projector GGUF for a text model of `text_hidden`.

    `output` is a file name ending in `-synthetic.gguf` or a folder (default: the current
    one). `layers` (1 to 27) sets the encoder's depth; fewer than Gemma 3's 27 encode
    faster and the file says so.
    """
    tower = GEMMA3_VISION
    if text_hidden <= 0:
        raise BorealisError(f"the text hidden size must be above 0, not {text_hidden}")
    if not 1 <= layers <= tower.layers:
        raise BorealisError(
            f"Gemma 3's vision encoder has {tower.layers} blocks: give --layers from 1 to "
            f"{tower.layers}, not {layers}"
        )
    output = _output_path(output, synthetic_projector_filename(text_hidden, layers))
    needed, free = projector_bytes(text_hidden, layers), shutil.disk_usage(output.parent).free
    if needed > free:
        raise BorealisError(
            f"the projector needs {needed / 1e9:.1f} GB in {output.parent}, {free / 1e9:.1f} GB "
            "are free — give a folder on a disk with more room"
        )
    say = progress or (lambda message: None)
    blocks = f"{layers} encoder block" + ("" if layers == 1 else "s")
    say(f"writing random F16 weights in Gemma 3's projector shape, {blocks}")
    writer = gguf.GGUFWriter(output, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.MMPROJ])
    try:
        _projector_metadata(writer, tower, text_hidden, layers)
        specs = projector_tensors(text_hidden, layers, tower)
        for spec in specs:
            dtype = _projector_dtype(spec)
            writer.add_tensor_info(
                spec.name, spec.dims[::-1], dtype, spec.elements * dtype.itemsize
            )
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        rng = np.random.default_rng(seed)
        pool = (rng.standard_normal(POOL_VALUES, dtype=np.float32) * WEIGHT_STD).astype(np.float16)
        for spec in specs:
            writer.write_tensor_data(_projector_values(spec, pool, rng))
    except BaseException:
        writer.close()
        output.unlink(missing_ok=True)
        raise
    writer.close()
    return output


def _projector_metadata(
    writer: gguf.GGUFWriter, tower: VisionTower, text_hidden: int, layers: int
) -> None:
    """The clip.* keys clip.cpp requires for a gemma3 vision projector, and the labels."""
    reduced = layers != tower.layers
    depth = (
        f"REDUCED DEPTH: {layers} of Gemma 3's {tower.layers} encoder blocks, so encoding is "
        "faster than the real projector's."
        if reduced
        else f"Full depth: all {tower.layers} encoder blocks."
    )
    writer.add_type(gguf.GGUFType.MMPROJ)
    writer.add_name("SYNTHETIC Gemma 3 vision projector (random weights, not a model)")
    writer.add_description(
        PROJECTOR_NOT_A_MODEL.format(
            encoder=tower.encoder,
            image_size=tower.image_size,
            tokens=tower.tokens_per_image,
            text_hidden=text_hidden,
            depth=depth,
        )
    )
    tags = ["synthetic", "random-weights", "not-a-model"] + (["reduced-depth"] if reduced else [])
    writer.add_array(gguf.Keys.General.TAGS, tags)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_clip_has_vision_encoder(True)
    writer.add_clip_projector_type(tower.projector_type)
    writer.add_vision_projection_dim(text_hidden)
    writer.add_vision_image_size(tower.image_size)
    writer.add_vision_patch_size(tower.patch_size)
    writer.add_vision_embedding_length(tower.hidden)
    writer.add_vision_feed_forward_length(tower.ffn)
    writer.add_vision_block_count(layers)
    writer.add_vision_head_count(tower.heads)
    writer.add_vision_attention_layernorm_eps(tower.layer_norm_eps)
    writer.add_vision_image_mean(list(tower.image_mean))
    writer.add_vision_image_std(list(tower.image_std))
    # SigLIP's gelu_pytorch_tanh, as convert_hf_to_gguf sets it for Gemma 3.
    writer.add_vision_use_gelu(True)


def _projector_values(spec: TensorSpec, pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    dtype = _projector_dtype(spec)
    if spec.is_matrix:
        return _values(spec, pool, rng).astype(dtype, copy=False)
    # Norm scales 1, biases 0: a neutral start, as an untrained layer has.
    fill = 0.0 if spec.name.endswith(".bias") else 1.0
    return np.full(spec.dims[::-1], fill, dtype=dtype)


def quantize(source: Path, output: Path, quant: str, *, threads: int | None = None) -> None:
    """Quantise `source` to `quant` with llama.cpp's own quantiser (its type mix, its code).

    llama.cpp writes a line per tensor to stderr; it is kept aside and shown on failure.
    """
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(FILE_TYPES[check_quant(quant)])
    params.nthread = threads or os.cpu_count() or 1
    with _stderr_aside() as log:
        status = llama_cpp.llama_model_quantize(str(source).encode(), str(output).encode(), params)
    if status != 0:
        output.unlink(missing_ok=True)
        tail = "\n".join(log[-5:])
        raise BorealisError(
            f"llama.cpp could not quantise {source.name} to {quant} (status {status}); its "
            f"log ends:\n{tail}"
        )


@contextmanager
def _stderr_aside() -> Iterator[list[str]]:
    """Send file descriptor 2 (where llama.cpp logs) to a temporary file meanwhile; the
    list yielded holds its lines afterwards."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as handle:
        os.dup2(handle.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            handle.seek(0)
            lines += handle.read().decode(errors="replace").splitlines()


__all__ = [
    "Field",
    "QUANTS",
    "quantize",
    "read_header",
    "projector_bytes",
    "projector_tensors",
    "synthesize",
    "synthesize_projector",
    "synthetic_filename",
    "synthetic_projector_filename",
    "synthetic_metadata",
    "write_random_f16",
]
