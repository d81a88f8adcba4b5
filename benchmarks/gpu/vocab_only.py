"""Write a vocab-only Gemma 3 GGUF: the tokenizer and metadata of a Gemma 3 GGUF, no
tensors (about 7 MB instead of the stand-in's 253 MB), so the tokenizer can travel to a
machine where `borealis_local.bench.synth` builds shape-faithful models from it.

    python benchmarks/gpu/vocab_only.py SOURCE.gguf OUTPUT.gguf
"""

from __future__ import annotations

import sys
from pathlib import Path

import gguf

from borealis_local.gguf_header import read_header
from borealis_local.runtime.gguf_check import check_gguf


def write_vocab_only(source: Path, output: Path) -> Path:
    check_gguf(source)
    metadata = read_header(source).metadata
    writer = gguf.GGUFWriter(output, metadata["general.architecture"].value)
    for key, field in metadata.items():
        if key.startswith(("tokenizer.", "general.", "gemma3.")) and key != "general.architecture":
            writer.add_key_value(key, field.value, field.type, field.sub_type)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
    finally:
        writer.close()
    check_gguf(output)  # a complete gemma3 GGUF, tensors none
    return output


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(write_vocab_only(Path(sys.argv[1]), Path(sys.argv[2])))
