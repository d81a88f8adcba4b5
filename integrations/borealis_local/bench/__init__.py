"""`borealis bench`: tokens/second and memory, in numbers that line up with llama-bench.

- `measure`: one configuration measured as llama-bench measures it (llama.cpp in-process
  through its C API), plus the user-facing chat view through the runtime backends, each
  configuration in a child process of its own so memory peaks never mix.
- `sweep`: comma lists and TOML files expanded into configurations, run with progress
  and resumable JSONL output.
- `report`: JSONL/JSON/CSV/Markdown writers, `compare` (ratios of two result files) and
  PNG plots.
- `cli`: the `borealis bench` command.
- `estimate`: the memory model behind `borealis recommend`; `synth`: shape-faithful
  synthetic GGUFs (`borealis synth`, random weights: not language models);
  `advice_cli`: those two commands.

Nothing here is imported by `import borealis_local`; llama-cpp-python, rich and
matplotlib load only where they are used.
"""
