"""``python -m bench.readme``: the README's figures, written from ``bench/results/latest.json``
between its ``<!-- bench-results:begin -->`` and ``<!-- bench-results:end -->`` markers, so
the README quotes the last run and nothing else."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from kafkube.consumers.formats import FORMATS
from kafkube.consumers.settings import SINK_TYPES


def format_of_sink(kind: str) -> str:
    """The format a sink type writes unless told otherwise (an Iceberg table: Parquet)."""
    return str(SINK_TYPES[kind].model_fields["format"].default)


ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- bench-results:begin -->", "<!-- bench-results:end -->"
DASH = "\u2013"  # between a figure's min and max


def _n(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _fig(figure: dict[str, Any]) -> str:
    return f"{_n(figure['median'])} ({_n(figure['min'])}{DASH}{_n(figure['max'])})"


def _yes(met: bool) -> str:  # noqa: FBT001 - a value
    return "yes" if met else "no"


def _measured(figures: dict[str, Any]) -> list[str]:
    """The sink types of the table that a run measured, in the table's order."""
    return [kind for kind in SINK_TYPES if kind in figures]


def render(document: dict[str, Any]) -> str:
    summary, targets, met = document["summary"], document["targets"], document["met"]
    producer, sinks = document["producer"], document["sinks"]
    machine = summary["machine"]
    lines = [
        (
            f"Latest run: {summary['date']}, {machine['cores']} cores, {machine['memory_gb']} GB, "
            f"Python {machine['python']}; the whole run took "
            f"{document['bench_seconds'] / 60:.1f} minutes. Medians of {document['runs']} runs, "
            f"(min{DASH}max)."
        ),
        "",
        "| figure | kafkube | Kafka's tool | ratio | target | met |",
        "|---|---|---|---|---|---|",
        (
            f"| producer, events/s, {producer['events']:,} events of {producer['record_bytes']} B, "
            f"acks=all, idempotent, transactions | {_fig(producer['ours_events_per_s'])} | "
            f"{_fig(producer['kafka_records_per_s'])} `kafka-producer-perf-test` | "
            f"{summary['producer_ratio']:.3f} | ≥ {targets['producer_ratio']} | "
            f"{_yes(met['producer_ratio'])} |"
        ),
    ]
    warm = _fig(sinks["kafka_records_per_s"])
    lines.extend(
        f"| {kind} sink, records/s to durable committed storage, {sinks['records']:,} "
        f"records ({FORMATS[format_of_sink(kind)].label}) | "
        f"{_fig(sinks[kind]['ours_records_per_s'])} | {warm} "
        f"`kafka-consumer-perf-test`, warm | {summary[f'{kind}_ratio']:.3f} | "
        f"≥ {targets[f'{kind}_ratio']} | {_yes(met[f'{kind}_ratio'])} |"
        for kind in _measured(sinks)
    )
    for output in (name for name in FORMATS if f"file_{name}" in sinks):
        key = f"file_{output}_vs_avro"
        lines.append(
            f"| file sink in {FORMATS[output].label or output} / in Avro, the same topic | "
            f"{_fig(sinks[f'file_{output}']['ours_records_per_s'])} | | {summary[key]:.2f} | "
            f"≥ {targets[key]} | {_yes(met[key])} |"
        )
    lines.extend(
        f"| {kind} sink / file sink, the same topic | | | {summary[f'{kind}_vs_file']:.2f} | "
        f"≥ {targets[f'{kind}_vs_file']} | {_yes(met[f'{kind}_vs_file'])} |"
        for kind in ("s3", "gcs")
        if f"{kind}_vs_file" in summary
    )
    lines.extend(_connect(document))
    pace, relist = document["watch_pace"], document["relist_pace"]
    lines += [
        (
            f"| watch pace: producer publish rate / bare watch rate, {pace['events']:,} events "
            f"from 3 writers as fast as the API server takes them | "
            f"{_fig(pace['producer_per_s'])} events/s | {_fig(pace['bare_watch_per_s'])} (bare "
            f"watch) | {summary['watch_pace_ratio']:.3f} | ≥ {targets['watch_pace_ratio']} | "
            f"{_yes(met['watch_pace_ratio'])} |"
        ),
        (
            f"| relist pace: a bare paged list's time / the producer's list-and-publish time, "
            f"{relist['events']:,} events | {_fig(relist['producer_per_s'])} events/s | "
            f"{_fig(relist['bare_list_per_s'])} (bare list) | {summary['relist_pace_ratio']:.3f} "
            f"| ≥ {targets['relist_pace_ratio']} | {_yes(met['relist_pace_ratio'])} |"
        ),
        "",
        (
            "CPU per record, user + system of the whole process (the sinks' and Connect's from "
            "the first record to the last commit, over the producer's million records; the "
            "producer's and the tools' whole runs, over the same counts), µs:"
        ),
        "",
        "| process | µs per record |",
        "|---|---|",
        *[f"| {name} | {value:.1f} |" for name, value in summary["cpu_us_per_record"].items()],
        "",
        (
            "Registry mode (the stack's Apicurio Registry, Confluent's framing), 200k events and "
            "100k records, against the same Kafka figures:"
        ),
        "",
        "| registry mode | kafkube | ratio | ratio without a registry |",
        "|---|---|---|---|",
    ]
    registry = document["registry"]
    lines.append(
        f"| producer, events/s | {_fig(registry['producer']['ours_events_per_s'])} | "
        f"{registry['producer']['ratio']:.3f} | {registry['producer']['ratio_without']:.3f} |"
    )
    for kind in _measured(registry):
        lines.append(
            f"| {kind} sink, records/s | {_fig(registry[kind]['ours_records_per_s'])} | "
            f"{registry[kind]['ratio']:.3f} | {registry[kind]['ratio_without']:.3f} |"
        )
    latency = document["latency"]
    lines += [
        "",
        "| end-to-end latency (s), 1 s rotation | p50 | p99 | max |",
        "|---|---|---|---|",
        *[
            f"| {kind} | {_fig(q['p50'])} | {_fig(q['p99'])} | {_fig(q['max'])} |"
            for kind, q in latency.items()
        ],
        "",
        (
            f"Target: p99 under {targets['p99_latency_s']} s: "
            f"{'met' if met['p99_latency_s'] else 'missed'}."
        ),
        "",
        "| peak RSS (MB) | 10k | 100k | 1M | 1M / 10k |",
        "|---|---|---|---|---|",
        *[
            f"| {process} | {sizes['10k']:.0f} | {sizes['100k']:.0f} | {sizes['1M']:.0f} | "
            f"{sizes['1M'] / sizes['10k']:.2f} |"
            for process, sizes in summary["rss_mb"].items()
        ],
        "",
        f"Target: flat within 20 %: {'met' if met['rss_flat'] else 'missed'}.",
        "",
    ]
    lines += _startup(document)
    scaling = document["scaling"]
    lines += [
        (
            f"| file sink group, {scaling['records']:,} records | records/s | CPU µs per record, "
            "all members |"
        ),
        "|---|---|---|",
        *[
            f"| {n} partition(s), {n} instance(s) | {_fig(rate)} | "
            f"{_fig(scaling['cpu_us_per_record'][n])} |"
            for n, rate in scaling["records_per_s"].items()
        ],
        "",
        "Where a producer event's time goes (one process, a sample of 20,000 events, µs per "
        "event): "
        + ", ".join(
            f"{stage.replace('_', ' ')} {value:.1f}"
            for stage, value in producer["profile"]["us_per_event"].items()
        )
        + ".",
    ]
    return "\n".join(lines)


def _connect(document: dict[str, Any]) -> list[str]:
    """Kafka Connect's file sink beside kafkube's (a run from before the bench ran Connect has
    none)."""
    sinks, targets, met = document["sinks"], document["targets"], document["met"]
    if "file_vs_connect" not in sinks:
        return []
    return [
        (
            f"| Kafka Connect's FileStreamSinkConnector, records/s, the same topic, "
            f"{converter} converter, first line to last commit | "
            f"{_fig(sinks[f'connect_{converter}']['records_per_s'])} | | "
            + (
                f"file sink / Connect: {sinks['file_vs_connect']:.2f} | "
                f"≥ {targets['file_vs_connect']} | {_yes(met['file_vs_connect'])} |"
                if converter == "bytes"
                else "| | |"
            )
        )
        for converter in ("bytes", "string")
    ] + (
        [
            (
                f"| CPU µs per record: file sink / Connect (ByteArrayConverter), the same topic, "
                f"first record to last commit | | | {sinks['file_cpu_vs_connect']:.2f} | "
                f"≤ {targets['file_cpu_vs_connect']} | {_yes(met['file_cpu_vs_connect'])} |"
            )
        ]
        if "file_cpu_vs_connect" in sinks
        else []
    )


def _startup(document: dict[str, Any]) -> list[str]:
    """The start-up table (a run from before the bench measured start-up has none)."""
    startup = document.get("startup")
    if startup is None:
        return []
    targets, met = document["targets"], document["met"]
    return [
        "| start-up, s | kafkube | target | met |",
        "|---|---|---|---|",
        (
            f"| `kafkube --help`, exec to exit | {_fig(startup['help_s'])} | ≤ {targets['help_s']} "
            f"| {_yes(met['help_s'])} |"
        ),
        (
            f"| producer restarted with {startup['producer_state_records']:,} state records, "
            f"exec to watching | {_fig(startup['producer_watching_s'])} | "
            f"≤ {targets['producer_watching_s']} | {_yes(met['producer_watching_s'])} |"
        ),
        (
            f"| file sink restarted in its group, {startup['sink_batch_records']:,} records "
            f"waiting, exec to its first durable batch | {_fig(startup['sink_first_write_s'])} "
            "| | |"
        ),
        "",
    ]


def main() -> int:
    document = json.loads((ROOT / "bench" / "results" / "latest.json").read_text())
    readme = ROOT / "README.md"
    text = readme.read_text()
    block = f"{BEGIN}\n{render(document)}\n{END}"
    updated, count = re.subn(
        re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.DOTALL
    )
    if count != 1:
        print(f"README.md: no {BEGIN} ... {END} block", file=sys.stderr)  # noqa: T201
        return 1
    readme.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
