"""`borealis bench`: tokens/second and memory, in numbers that line up with llama-bench.

- `row`: the result row (`ResultRow`), llama-bench's JSON fields plus ours: the schema
  every writer and reader uses.
- `measure`: what is measured (tests, targets, configurations); `child`: each
  configuration in a spawned process of its own, so memory peaks never mix; `run`:
  what every run shares (the machine's facts, llama-bench's statistics, the row);
  `llama_bench`: llama-bench's method on llama.cpp's C API, in-process; `serving`:
  Ollama and OpenAI-compatible servers; `chat_view`: the user-facing chat view through
  the runtime backends; `probes` and `nvml`: host and GPU memory.
- `sweep`: comma lists and TOML files expanded into configurations, run with progress
  and resumable JSONL output.
- `report`: JSONL/JSON/CSV/Markdown writers and `compare` (ratios of two result
  files); `plots`: PNG plots.
- `cli`: the `borealis bench` command.
- `estimate`: the memory model, from `tensors` (a shape's tensors and their quant
  types); `recommend`: what fits a machine (`borealis recommend`); `synth`:
  shape-faithful synthetic GGUFs (`borealis synth`, random weights: not language
  models); `advice_cli`: those two commands.

Nothing here is imported by `import borealis_local`; llama-cpp-python, rich and
matplotlib load only where they are used.
"""
