"""How the keyword index scales: build, search, save and load at 5k to 1M documents.

    .venv/bin/python benchmarks/retrieval_scale.py                  # 5k, 50k
    .venv/bin/python benchmarks/retrieval_scale.py --docs 1000000 --words 20

Documents are synthetic Norwegian: words drawn with a Zipf-like law from the example
corpus's vocabulary and inflected/compounded variants of it (so the analyzer sees
stopwords, inflections and a long tail of rare words, as in a real library). Queries are
eight-word draws from the same law. Each size runs in a fresh child process, so its
peak memory (max RSS) is its own. Prints a Markdown table; --json for the raw figures.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUFFIXES = ("", "", "", "en", "et", "a", "ene", "ane", "ar", "er", "s", "ane", "heit")


def vocabulary(seed: int) -> list[str]:
    from borealis_local.corpus import load_corpus

    rng = random.Random(seed)
    words = sorted(
        {w.strip(".,;:!?()«»\"'").lower() for d in load_corpus() for w in d.text.split()}
    )
    words = [w for w in words if w.isalpha()]
    # A long tail: inflections and compounds of the corpus's words.
    tail = {rng.choice(words) + rng.choice(SUFFIXES) for _ in range(20_000)}
    tail |= {rng.choice(words) + rng.choice(words) for _ in range(60_000)}
    return words + sorted(tail)


def draw(rng: random.Random, words: list[str], weights: list[float], n: int) -> str:
    return " ".join(rng.choices(words, cum_weights=weights, k=n))


def measure(n_docs: int, n_words: int, n_queries: int, seed: int) -> dict:
    from borealis_local.corpus import Document
    from borealis_local.retrieval import KeywordRetriever

    rng = random.Random(seed)
    words = vocabulary(seed)
    cumulative, total = [], 0.0
    for rank in range(1, len(words) + 1):
        total += 1.0 / rank
        cumulative.append(total)
    rng.shuffle(words)
    documents = [
        Document(
            id=str(i),
            title="",
            language="nb" if i % 3 else "nn",
            text=draw(rng, words, cumulative, n_words),
        )
        for i in range(n_docs)
    ]
    queries = [draw(rng, words, cumulative, 8) for _ in range(n_queries)]

    started = time.perf_counter()
    retriever = KeywordRetriever.from_documents(documents)
    build_s = time.perf_counter() - started
    del documents

    retriever.search(queries[0], k=10)  # first call pays for imports
    times = []
    for query in queries:
        started = time.perf_counter()
        retriever.search(query, k=10)
        times.append(time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        retriever.save(directory)
        save_s = time.perf_counter() - started
        size = sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file())
        del retriever
        started = time.perf_counter()
        loaded = KeywordRetriever.load(directory)
        load_s = time.perf_counter() - started
        loaded.search(queries[0], k=10)

    return {
        "documents": n_docs,
        "words_per_document": n_words,
        "build_s": round(build_s, 2),
        "search_ms_median": round(statistics.median(times) * 1000, 2),
        "search_ms_p90": round(sorted(times)[int(len(times) * 0.9)] * 1000, 2),
        "save_s": round(save_s, 2),
        "load_s": round(load_s, 2),
        "index_mb": round(size / 2**20, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", default="5000,50000", help="comma list of sizes")
    parser.add_argument("--words", type=int, default=80, help="words per document (80)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child's size
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.words, args.queries, args.seed)))
        return
    results = []
    for n in (int(x) for x in args.docs.split(",")):
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                str(n),
                "--words",
                str(args.words),
                "--queries",
                str(args.queries),
                "--seed",
                str(args.seed),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(f"done: {n} documents", file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    keys = list(results[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + " ---: |" * len(keys))
    for row in results:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
