"""The benchmark's figures as one PNG: ratios against Kafka's tools, latency, memory, scaling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")  # files only, no display
import matplotlib.pyplot as plt


def _bars(axis: Any, labels: list[str], figures: list[dict[str, float]], color: str) -> None:  # noqa: ANN401 - a matplotlib axis
    medians = [f["median"] for f in figures]
    errors = [
        [m - f["min"] for m, f in zip(medians, figures, strict=True)],
        [f["max"] - m for m, f in zip(medians, figures, strict=True)],
    ]
    axis.bar(labels, medians, yerr=errors, capsize=4, color=color)
    for x, value in enumerate(medians):
        axis.annotate(f"{value:.3g}", (x, value), ha="center", va="bottom", fontsize=8)


def draw(document: dict[str, Any], path: Path) -> None:
    summary, targets = document["summary"], document["targets"]
    figure, axes = plt.subplots(2, 3, figsize=(18, 8))
    fig_ratio, fig_latency, fig_rss, fig_cpu, fig_scaling, fig_scaling_cpu = axes.flat

    # The producer, each sink, the paces, and the other formats against Avro.
    keys = [k for k in summary if k.endswith(("_ratio", "_vs_avro"))]
    names = [k.removesuffix("_ratio").replace("_", " ") for k in keys]
    fig_ratio.bar(names, [summary[k] for k in keys], color="tab:blue")
    fig_ratio.scatter(names, [targets[k] for k in keys], marker="_", s=600, color="red",
                      label="target", zorder=3)  # fmt: skip
    for x, key in enumerate(keys):
        fig_ratio.annotate(f"{summary[key]:.3g}", (x, summary[key]), ha="center", va="bottom",
                           fontsize=8)  # fmt: skip
    fig_ratio.set_title("kafkube / Kafka's own perf tool (warm; paces: / a bare watch, list)")
    fig_ratio.tick_params(axis="x", labelrotation=30)
    fig_ratio.legend()

    cpu = summary["cpu_us_per_record"]
    colors = ["tab:gray" if name.startswith("kafka-") else "tab:orange" for name in cpu]
    fig_cpu.bar(list(cpu), list(cpu.values()), color=colors)
    for x, value in enumerate(cpu.values()):
        fig_cpu.annotate(f"{value:.3g}", (x, value), ha="center", va="bottom", fontsize=8)
    fig_cpu.set_title("CPU µs per record, whole process (grey: Kafka's tools)")
    fig_cpu.tick_params(axis="x", labelrotation=30)

    latency = document["latency"]
    sinks = list(latency)
    _bars(fig_latency, [f"{s} p99" for s in sinks], [latency[s]["p99"] for s in sinks], "tab:green")
    fig_latency.axhline(targets["p99_latency_s"], color="red", linestyle="--", label="target")
    fig_latency.set_title("end-to-end latency p99 (s), 1 s rotation")
    fig_latency.legend()

    sizes = ["10k", "100k", "1M"]
    rss = summary["rss_mb"]
    width = 0.8 / len(rss)
    for n, (process, by_size) in enumerate(rss.items()):
        positions = [x + n * width for x in range(len(sizes))]
        fig_rss.bar(positions, [by_size[s] for s in sizes], width=width, label=process)
    fig_rss.set_xticks([x + 0.4 - width / 2 for x in range(len(sizes))], sizes)
    fig_rss.set_title("peak RSS (MB) by records processed")
    fig_rss.legend()

    scaling = document["scaling"]["records_per_s"]
    _bars(fig_scaling, [f"{n} x" for n in scaling], list(scaling.values()), "tab:purple")
    fig_scaling.set_title("file sink group: records/s by partitions = instances")
    scaling_cpu = document["scaling"]["cpu_us_per_record"]
    _bars(fig_scaling_cpu, [f"{n} x" for n in scaling_cpu], list(scaling_cpu.values()), "tab:red")
    fig_scaling_cpu.set_title("file sink group: CPU µs per record, all members")

    figure.suptitle(f"kafkube bench {summary['date']} ({summary['machine']['cores']} cores)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
