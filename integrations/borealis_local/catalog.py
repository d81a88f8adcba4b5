"""The one source of truth about the Borealis models.

Sizes, variants, quantisations, hub repositories, GGUF file names, licences, modality,
context length, architecture shapes, sampling defaults and the chat format all live
here. Templates, Modelfiles, presets, the hub code and the runtimes read them from
this module; nothing else spells a repository name or a layer count.

Sources: the National Library of Norway's model cards (NbAiLab/borealis collection)
and Google's Gemma 3 configs; see shared/FACTS.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from borealis_local.errors import UnknownModelError

HUB_ORG = "NbAiLab"
COLLECTION = f"{HUB_ORG}/borealis"

SIZES = ("270m", "1b", "4b", "12b", "27b")
VARIANTS = ("full", "open")
QUANTS = ("BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M", "Q2_K")
# The hub's default tag: `ollama run huggingface.co/NbAiLab/borealis-4b-gguf` means `:Q4_K_M`.
DEFAULT_QUANT = "Q4_K_M"


@dataclass(frozen=True)
class ChatFormat:
    """Gemma 3's turn format, the one definition both chat templates are made from."""

    bos: str = "<bos>"
    start_of_turn: str = "<start_of_turn>"
    end_of_turn: str = "<end_of_turn>"
    user_role: str = "user"
    model_role: str = "model"
    # Joins system messages into the first user turn's prefix, ends that prefix, and
    # joins consecutive messages of one role (Ollama does the last before templating).
    separator: str = "\n\n"
    # Where an image part of a typed message stands; libmtmd (or the processor) expands
    # it to the image's soft tokens.
    start_of_image: str = "<start_of_image>"
    end_of_image: str = "<end_of_image>"
    # Token ids in the Gemma 3 vocabulary, for checks on tokenised prompts.
    bos_id: int = 2
    eos_id: int = 1
    start_of_turn_id: int = 105
    end_of_turn_id: int = 106

    @property
    def generation_prompt(self) -> str:
        return f"{self.start_of_turn}{self.model_role}\n"

    @property
    def control_tokens(self) -> tuple[str, ...]:
        """Gemma 3 special tokens that runtimes parse when they appear as prompt text."""
        return (
            self.bos, "<eos>", "<pad>", self.start_of_turn, self.end_of_turn,
            self.start_of_image, self.end_of_image, "<image_soft_token>",
        )  # fmt: skip


CHAT_FORMAT = ChatFormat()


@dataclass(frozen=True)
class Sampling:
    """Sampling defaults. NB publishes none for Borealis, so these are Gemma 3's."""

    temperature: float = 1.0
    top_k: int = 64
    top_p: float = 0.95
    source: str = "Gemma 3's generation_config (Google); the National Library publishes none"


SAMPLING = Sampling()


@dataclass(frozen=True)
class License:
    name: str
    short_name: str
    url: str
    summary: str
    # Use restrictions quoted from the licence's summary on the model card.
    restrictions: tuple[str, ...] = ()


GEMMA_TERMS = License(
    name="Gemma Terms of Use",
    short_name="Gemma ToU",
    url="https://ai.google.dev/gemma/terms",
    summary="Borealis open is a Gemma 3 derivative trained without press material; "
    "Google's Gemma Terms of Use apply.",
)

NB_LICENSE = License(
    name="NB-License Version 1.0 (June 2026)",
    short_name="NB-License 1.0",
    url="https://ai.nb.no/license/",
    summary="The National Library of Norway's adaptation of the Apache License 2.0. "
    f"Borealis is a Gemma 3 derivative, so the {GEMMA_TERMS.name} "
    f"({GEMMA_TERMS.url}) also apply.",
    restrictions=(
        "Do not intentionally use the model to recreate training data "
        "(copyrighted or personal data).",
        "Do not use the model or its output to provide end-user services whose primary "
        "purpose is to give access to the licensed press publications in the training data.",
    ),
)


@dataclass(frozen=True)
class Shape:
    """Gemma 3 architecture of one size (FACTS.md; 270m read from a real GGUF)."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    sliding_window: int
    context_length: int
    vocab: int = 262_144
    # Every 6th layer attends globally; the others use the sliding window.
    global_every: int = 6

    @property
    def global_layers(self) -> int:
        return self.layers // self.global_every

    @property
    def sliding_layers(self) -> int:
        return self.layers - self.global_layers

    def kv_cache_bytes(
        self, n_ctx: int, *, n_seq: int = 1, n_ubatch: int = 512, bytes_per_value: int = 2
    ) -> int:
        """KV cache size as llama.cpp allocates it (f16 by default).

        Global layers get `n_ctx` cells; sliding-window layers get
        `min(n_ctx, window * n_seq + n_ubatch)` rounded up to 256.
        """
        swa_cells = min(n_ctx, 256 * math.ceil((self.sliding_window * n_seq + n_ubatch) / 256))
        per_cell_per_layer = 2 * self.kv_heads * self.head_dim * bytes_per_value  # K and V
        cells = self.global_layers * n_ctx + self.sliding_layers * swa_cells
        return cells * per_cell_per_layer


SHAPES = {
    "270m": Shape(18, 640, 4, 1, 256, 2048, 512, 32_768),
    "1b": Shape(26, 1152, 4, 1, 256, 6912, 512, 32_768),
    "4b": Shape(34, 2560, 8, 4, 256, 10240, 1024, 131_072),
    "12b": Shape(48, 3840, 16, 8, 256, 15360, 1024, 131_072),
    "27b": Shape(62, 5376, 32, 16, 128, 21504, 1024, 131_072),
}


@dataclass(frozen=True)
class VisionTower:
    """Gemma 3's image encoder and projector (the mmproj file), as llama.cpp's libmtmd runs it.

    A SigLIP vision transformer reads the image resized to `image_size` square in
    `patch_size` patches (a 64x64 grid); the projector averages each `pooling` x `pooling`
    block of the grid (to 16x16 = 256 soft tokens), RMS-normalises and projects them to
    the text model's hidden size. Sources: Google's configs (`vision_config`,
    `mm_tokens_per_image`) and llama.cpp's tools/mtmd (clip.cpp, PROJECTOR_TYPE_GEMMA3).
    The same tower serves 4b, 12b and 27b; only the projection's width differs.
    """

    encoder: str = "SigLIP"
    # `clip.projector_type` in the mmproj GGUF.
    projector_type: str = "gemma3"
    image_size: int = 896
    patch_size: int = 14
    layers: int = 27
    hidden: int = 1152
    ffn: int = 4304
    heads: int = 16
    # Average-pooling kernel per side (clip.cpp's n_merge for gemma3; HF: 64 // 16).
    pooling: int = 4
    layer_norm_eps: float = 1e-6
    # Pixel normalisation (Google's preprocessor_config): values mapped to [-1, 1].
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    @property
    def patches_per_side(self) -> int:
        return self.image_size // self.patch_size

    @property
    def patches(self) -> int:
        """Positions the encoder attends over (its position embedding's rows)."""
        return self.patches_per_side**2

    @property
    def tokens_per_image(self) -> int:
        """Soft tokens one image takes in the prompt, as clip.cpp counts them."""
        return (self.patches_per_side // self.pooling) ** 2

    def to_dict(self) -> dict:
        return {
            "encoder": self.encoder,
            "projector_type": self.projector_type,
            "image_size": self.image_size,
            "patch_size": self.patch_size,
            "layers": self.layers,
            "hidden": self.hidden,
            "ffn": self.ffn,
            "heads": self.heads,
            "pooling": self.pooling,
            "tokens_per_image": self.tokens_per_image,
        }


GEMMA3_VISION = VisionTower()
# 270m and 1b are gemma3_text; the larger sizes keep Gemma 3's vision tower. The
# projector's file name in the GGUF repos is not confirmed: find it in the repo listing
# (files starting with `mmproj`), as `llama-server -hf` does.
VISION = {"4b": GEMMA3_VISION, "12b": GEMMA3_VISION, "27b": GEMMA3_VISION}

# The context we configure by default. Ollama's own default (4096) silently cuts long
# RAG prompts from the front; these fit a few retrieved documents with room to answer.
# The two small text-only sizes get their whole window (their KV cache stays small:
# one KV head); the multimodal sizes get 16k, which keeps the KV cache near a GiB or
# less (see `Shape.kv_cache_bytes`) on top of the weights.
DEFAULT_NUM_CTX = {"270m": 32_768, "1b": 32_768, "4b": 16_384, "12b": 16_384, "27b": 16_384}

# Exact file sizes we have seen published, for download checks; others are unknown.
KNOWN_FILE_SIZES = {
    "borealis-4b-Q4_K_M.gguf": 2_489_894_560,
    "borealis-12b-Q4_K_M.gguf": 7_300_778_912,
}


@dataclass(frozen=True)
class Model:
    """One Borealis model: a size in one variant."""

    size: str
    variant: str

    @property
    def name(self) -> str:
        """`borealis-4b` or `borealis-open-4b`: the stem of every repo and file name."""
        return f"borealis-{self.size}" if self.variant == "full" else f"borealis-open-{self.size}"

    @property
    def repo(self) -> str:
        return f"{HUB_ORG}/{self.name}"

    @property
    def gguf_repo(self) -> str:
        return f"{self.repo}-gguf"

    @property
    def license(self) -> License:
        return NB_LICENSE if self.variant == "full" else GEMMA_TERMS

    @property
    def gated(self) -> bool:
        """Full models need the licence accepted on the hub and a token to download."""
        return self.variant == "full"

    @property
    def shape(self) -> Shape:
        return SHAPES[self.size]

    @property
    def context_length(self) -> int:
        return self.shape.context_length

    @property
    def default_num_ctx(self) -> int:
        return DEFAULT_NUM_CTX[self.size]

    @property
    def vision(self) -> VisionTower | None:
        """The vision tower, for the sizes that see images; None for the text-only ones."""
        return VISION.get(self.size)

    @property
    def modality(self) -> str:
        return "text" if self.vision is None else "text+image"

    @property
    def ollama_tag(self) -> str:
        """The tag our README creates it as: `borealis:4b`, `borealis-open:4b`."""
        family = "borealis" if self.variant == "full" else "borealis-open"
        return f"{family}:{self.size}"

    @property
    def modelfile_name(self) -> str:
        return f"{self.name}.Modelfile"

    def gguf_filename(self, quant: str = DEFAULT_QUANT) -> str:
        return f"{self.name}-{check_quant(quant)}.gguf"

    def hub_reference(self, quant: str = DEFAULT_QUANT) -> str:
        """What `ollama run`/FROM accept for a hub GGUF: `huggingface.co/NbAiLab/…:Q4_K_M`.

        Not `hf.co/…`, the hub's short form: Ollama (since its CVE-2025-51471 hardening)
        refuses the registry token that the hub serves from huggingface.co for a pull
        that asked hf.co (ollama/ollama#15661). The hub documents both hosts as equal.
        """
        return f"huggingface.co/{self.gguf_repo}:{check_quant(quant)}"

    def pull_command(self, quant: str = DEFAULT_QUANT) -> str:
        """The `borealis pull` line that downloads and verifies this model's file."""
        variant = "" if self.variant == "full" else f" --variant {self.variant}"
        quant = check_quant(quant)
        quant_option = "" if quant == DEFAULT_QUANT else f" --quant {quant}"
        return f"borealis pull {self.size}{variant}{quant_option}"

    def to_dict(self) -> dict:
        """Everything the catalog knows of this model, for `borealis list --json`."""
        shape = self.shape
        return {
            "name": self.name,
            "size": self.size,
            "variant": self.variant,
            "repo": self.repo,
            "gguf_repo": self.gguf_repo,
            "gated": self.gated,
            "ollama_tag": self.ollama_tag,
            "modality": self.modality,
            "vision": None if self.vision is None else self.vision.to_dict(),
            "context_length": self.context_length,
            "default_num_ctx": self.default_num_ctx,
            "license": {
                "name": self.license.name,
                "url": self.license.url,
                "restrictions": list(self.license.restrictions),
            },
            "quants": list(QUANTS),
            "default_quant": DEFAULT_QUANT,
            "files": {quant: self.gguf_filename(quant) for quant in QUANTS},
            "shape": {
                "layers": shape.layers,
                "hidden": shape.hidden,
                "heads": shape.heads,
                "kv_heads": shape.kv_heads,
                "head_dim": shape.head_dim,
                "ffn": shape.ffn,
                "sliding_window": shape.sliding_window,
                "vocab": shape.vocab,
            },
        }


MODELS = tuple(Model(size, variant) for variant in VARIANTS for size in SIZES)


def check_quant(quant: str) -> str:
    """The canonical spelling of a quantisation (`q4_k_m` -> `Q4_K_M`)."""
    for known in QUANTS:
        if quant.upper() == known.upper():
            return known
    raise UnknownModelError(
        f"unknown quantisation {quant!r}: Borealis GGUF repos have {', '.join(QUANTS)}"
    )


def get_model(size: str, variant: str = "full") -> Model:
    size = size.lower()
    if size not in SIZES:
        raise UnknownModelError(f"unknown size {size!r}: choose one of {', '.join(SIZES)}")
    if variant not in VARIANTS:
        raise UnknownModelError(
            f"unknown variant {variant!r}: choose one of {', '.join(VARIANTS)}"
        )
    return Model(size, variant)


def parse_name(name: str) -> tuple[Model, str]:
    """Read a catalog name such as `borealis-open-4b:Q8_0` into (model, quant).

    The quant is optional (defaults to Q4_K_M); the `borealis-` prefix too, so `4b`
    and `open-4b` work as well.
    """
    stem, _, quant = name.strip().partition(":")
    stem = stem.lower().removeprefix("borealis-")
    variant = "full"
    if stem.startswith("open-"):
        variant, stem = "open", stem.removeprefix("open-")
    if stem not in SIZES:
        raise UnknownModelError(
            f"unknown model {name!r}: use a catalog name such as borealis-4b or "
            f"borealis-open-4b:Q8_0 (sizes: {', '.join(SIZES)}); `borealis list` shows all"
        )
    return Model(stem, variant), check_quant(quant or DEFAULT_QUANT)


def model_named(name: str) -> Model | None:
    """The catalog model a runtime's model name means, if it means one: a catalog name
    (`borealis-open-4b:Q8_0`, `4b`), the Ollama tag we create (`borealis-open:4b`) or a
    GGUF file name (`borealis-open-4b-Q8_0.gguf`); None for any other name."""
    name = name.strip().rsplit("/", 1)[-1]
    try:
        return parse_name(name)[0]
    except UnknownModelError:
        pass
    for model in MODELS:
        if name.lower() == model.ollama_tag or any(
            name == model.gguf_filename(quant) for quant in QUANTS
        ):
            return model
    return None
