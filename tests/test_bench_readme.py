"""The README quotes the last benchmark run: its figures are what bench/results/latest.json
holds, written by ``python -m bench.readme``."""

from __future__ import annotations

import json

from bench.readme import BEGIN, END, ROOT, render


def test_the_readme_quotes_the_latest_bench_results() -> None:
    document = json.loads((ROOT / "bench" / "results" / "latest.json").read_text())
    readme = (ROOT / "README.md").read_text()
    quoted = readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()

    assert quoted == render(document).strip(), "run: python -m bench.readme"
