"""The tensors of a Gemma 3 shape, and the types llama.cpp's quantiser gives them.

`gemma3_tensors`: every tensor llama.cpp's gemma3 loader reads for a catalog shape
(tied embeddings, per layer attention, q/k norms, FFN and norms; the 4b+ vision tower
lives in a separate mmproj file and is not loaded for text). `tensor_types`: the type
each gets for a quant: the K-quant mixes bump some tensors to more bits and fall back
to other types where a row length is not a multiple of 256, which is most of 270m and
1b. Used by the memory estimate (`estimate`) and the synthetic models (`synth`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from borealis_local.catalog import Shape, check_quant

if TYPE_CHECKING:
    import gguf

@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a Gemma 3 GGUF: its name and dimensions in ggml order."""

    name: str
    dims: tuple[int, ...]
    layer: int | None = None

    @property
    def elements(self) -> int:
        return math.prod(self.dims)

    @property
    def is_matrix(self) -> bool:
        return len(self.dims) >= 2

    @property
    def kind(self) -> str:
        """`attn_v`, `ffn_down`, `token_embd`, … (the name without block and suffix)."""
        return tensor_kind(self.name)


def gemma3_tensors(shape: Shape) -> list[TensorSpec]:
    """The tensors llama.cpp's gemma3 loader reads, in the order convert_hf_to_gguf writes.

    Tied embeddings: `token_embd` is also the output matrix. The vision tower of the
    4b+ sizes lives in a separate mmproj file and is not loaded for text.
    """
    hidden, head_dim = shape.hidden, shape.head_dim
    q_width, kv_width = shape.heads * head_dim, shape.kv_heads * head_dim
    tensors = [
        TensorSpec("output_norm.weight", (hidden,)),
        TensorSpec("token_embd.weight", (hidden, shape.vocab)),
    ]
    per_layer = (  # alphabetical, as in published GGUFs
        ("attn_k", (hidden, kv_width)),
        ("attn_k_norm", (head_dim,)),
        ("attn_norm", (hidden,)),
        ("attn_output", (q_width, hidden)),
        ("attn_q", (hidden, q_width)),
        ("attn_q_norm", (head_dim,)),
        ("attn_v", (hidden, kv_width)),
        ("ffn_down", (shape.ffn, hidden)),
        ("ffn_gate", (hidden, shape.ffn)),
        ("ffn_norm", (hidden,)),
        ("ffn_up", (hidden, shape.ffn)),
        ("post_attention_norm", (hidden,)),
        ("post_ffw_norm", (hidden,)),
    )
    for layer in range(shape.layers):
        tensors += [TensorSpec(f"blk.{layer}.{n}.weight", d, layer) for n, d in per_layer]
    return tensors


def parameter_count(shape: Shape) -> int:
    return sum(spec.elements for spec in gemma3_tensors(shape))


# -- the quantiser's type mix ---------------------------------------------------------------

# ggml types by name (gguf.GGMLQuantizationType's); gguf is imported only where sizes
# are needed, so `import borealis_local.bench.estimate` and the CLI stay light.
# The base type of each catalog quant (llama.cpp: llama_model_quantize_impl).
BASE_TYPES = {
    "BF16": "BF16",
    "Q8_0": "Q8_0",
    "Q6_K": "Q6_K",
    "Q5_K_M": "Q5_K",
    "Q4_K_M": "Q4_K",
    "Q3_K_M": "Q3_K",
    "Q2_K": "Q2_K",
}
# When a row length is not a multiple of a K-quant's 256-value block, llama.cpp falls
# back to a type with 32-value blocks (llama-quant.cpp, "using fallback quantization").
FALLBACKS = {"Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}


def _more_bits(index: int, count: int) -> bool:
    """llama.cpp's `use_more_bits`: the first and last eighth, and every third between."""
    eighth = count // 8
    return index < eighth or index >= 7 * count // 8 or (index - eighth) % 3 == 2


def tensor_types(shape: Shape, quant: str) -> list[tuple[TensorSpec, gguf.GGMLQuantizationType]]:
    """Each tensor with the type llama.cpp's quantiser gives it for `quant`.

    A description of llama.cpp's rules (llama-quant.cpp, llama_tensor_get_type) as they
    apply to Gemma 3, checked against llama.cpp's own choices for every size and quant
    (tests/test_estimate.py, its quantiser's dry run).
    """
    import gguf

    quant = check_quant(quant)
    base = BASE_TYPES[quant]
    gqa = shape.heads // shape.kv_heads
    plan = []
    for spec in gemma3_tensors(shape):
        if not spec.is_matrix:
            chosen = "F32"
        elif quant in ("BF16", "Q8_0"):
            chosen = base
        else:
            chosen = _fit_rows(spec, _mixed_type(spec, quant, base, shape, gqa))
        plan.append((spec, gguf.GGMLQuantizationType[chosen]))
    return plan


def _mixed_type(spec: TensorSpec, quant: str, base: str, shape: Shape, gqa: int) -> str:
    tensor, layer, layers = spec.kind, spec.layer or 0, shape.layers
    if tensor == "token_embd":  # tied: quantised as the output matrix
        return "Q8_0" if spec.dims[0] % _block_size(base) else "Q6_K"
    if tensor == "attn_v":
        if quant == "Q2_K":
            return "Q4_K" if gqa >= 4 else "Q3_K"
        if quant == "Q3_K_M":
            return "Q5_K" if layer < 2 else "Q4_K"
        if quant in ("Q4_K_M", "Q5_K_M") and _more_bits(layer, layers):
            return "Q6_K"
    if tensor == "ffn_down":
        if quant == "Q2_K":
            return "Q3_K"
        if quant == "Q3_K_M":
            return "Q5_K" if layer < layers // 16 else "Q4_K"
        if quant in ("Q4_K_M", "Q5_K_M") and _more_bits(layer, layers):
            return "Q6_K"
    if tensor == "attn_output" and quant in ("Q2_K", "Q3_K_M"):
        return "Q3_K" if quant == "Q2_K" else "Q4_K"
    return base


def _fit_rows(spec: TensorSpec, chosen: str) -> str:
    if spec.dims[0] % _block_size(chosen) == 0:
        return chosen
    fallback = FALLBACKS.get(chosen, "F16")
    return fallback if spec.dims[0] % _block_size(fallback) == 0 else "F16"


def _block_size(type_name: str) -> int:
    import gguf

    return gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[type_name]][0]


def tensor_bytes(dims: tuple[int, ...], ggml_type: gguf.GGMLQuantizationType) -> int:
    import gguf

    block, size = gguf.GGML_QUANT_SIZES[ggml_type]
    return math.prod(dims) // block * size



def tensor_kind(name: str) -> str:
    """`attn_v` of `blk.3.attn_v.weight`: the tensor's name without block and suffix."""
    return name.removesuffix(".weight").rpartition(".")[2]


__all__ = [
    "TensorSpec",
    "gemma3_tensors",
    "parameter_count",
    "tensor_bytes",
    "tensor_kind",
    "tensor_types",
]
