"""Realistic remote write requests for the benchmark, built before anything is timed.

Series look like node-exporter's as scraped by a Prometheus in a cluster: 8 labels each, sorted
by name as Prometheus sends them (`__name__`, `cluster`, `env`, `instance`, `job` and three
labels of the metric family: cpu/mode, device/fstype/mountpoint, ...), one sample per series,
values with full float64 precision (counters grow, gauges wander) and current timestamps.

`fleet_series` is the other shape: every series of its own node (a federating Prometheus, or
recording rules over a fleet), from many clusters.

`Workload` holds `sets` disjoint groups of `series_per_request` series. Round r of set s is one
request: the same series as round r-1 with values and timestamps one scrape interval later, so a
real TSDB (Prometheus) appends to existing series instead of creating new ones, and nothing is
ever out of order.
"""

from __future__ import annotations

import math
import random
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import snappy

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chalicelib.prompb.prometheus_remote_pb2 import WriteRequest  # noqa: E402

SCRAPE_INTERVAL_MS = 15_000
JOB = "node-exporter"
CPU_MODES = ("idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user")
DISKS = (("nvme0n1", "259", "0"), ("nvme1n1", "259", "1"), ("sda", "8", "0"), ("dm-0", "253", "0"))
FILESYSTEMS = (
    ("/dev/nvme0n1p1", "xfs", "/"),
    ("/dev/nvme0n1p128", "vfat", "/boot/efi"),
    ("/dev/nvme1n1", "ext4", "/var/lib/containerd"),
    ("tmpfs", "tmpfs", "/run"),
    ("shm", "tmpfs", "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/"),
    ("overlay", "overlay", "/run/containerd/io.containerd.runtime.v2.task/k8s.io/"),
)
NICS = (("eth0", "up", "full"), ("eth1", "up", "full"), ("lo", "unknown", ""), ("cni0", "up", "full"))

Labels = list[tuple[str, str]]


@dataclass
class Series:
    labels: Labels
    counter: bool
    value: float


def _instance_series(instance: str, cluster: str, rng: random.Random) -> list[Series]:
    """About 200 series of one node, each with exactly 8 labels."""
    common = [("cluster", cluster), ("env", "production"), ("instance", instance), ("job", JOB)]
    families: list[tuple[str, bool, list[tuple[tuple[str, str], ...]]]] = [
        ("node_cpu_seconds_total", True,
         [(("cpu", str(cpu)), ("mode", mode), ("package", str(cpu // 8)))
          for cpu in range(16) for mode in CPU_MODES]),
    ]
    for metric in ("node_disk_read_bytes_total", "node_disk_written_bytes_total",
                   "node_disk_io_time_seconds_total", "node_disk_reads_completed_total"):
        families.append((metric, True, [(("device", d), ("major", ma), ("minor", mi))
                                        for d, ma, mi in DISKS]))
    for metric in ("node_filesystem_avail_bytes", "node_filesystem_size_bytes", "node_filesystem_files_free"):
        families.append((metric, False, [(("device", d), ("fstype", f), ("mountpoint", m))
                                         for d, f, m in FILESYSTEMS]))
    for metric in ("node_network_receive_bytes_total", "node_network_transmit_bytes_total",
                   "node_network_receive_packets_total", "node_network_transmit_packets_total"):
        families.append((metric, True, [(("device", d), ("duplex", x), ("operstate", o))
                                        for d, o, x in NICS]))
    series = []
    for metric, counter, variants in families:
        for variant in variants:
            labels = sorted([("__name__", metric), *common, *variant])
            labels = [(name, value or "none") for name, value in labels]
            value = rng.uniform(1e3, 1e11) if counter else rng.uniform(0, 5e11)
            series.append(Series(labels, counter, value))
    return series


def node_series(count: int, seed: int = 42, prefix: str = "10.12") -> list[Series]:
    """`count` distinct node-exporter-like series spread over as many nodes as needed."""
    rng = random.Random(seed)
    series: list[Series] = []
    node = 0
    while len(series) < count:
        instance = f"{prefix}.{node // 250}.{node % 250 + 1}:9100"
        series.extend(_instance_series(instance, f"prod-eu-west-1-{'abc'[node % 3]}", rng))
        node += 1
    return series[:count]


# Clusters a federating Prometheus gathers from (see fleet_series).
FLEET_CLUSTERS = 50


def fleet_series(count: int, seed: int = 42, prefix: str = "10.20") -> list[Series]:
    """`count` series each of its own node (`instance`), the other labels as the fleet's node
    exporters send them: what a Prometheus federating a fleet, or recording rules over it, send.
    The nodes are spread over FLEET_CLUSTERS clusters, so a request of 2000 series holds about
    40 of each cluster: a group of its own for batching, too small to fill a call."""
    rng = random.Random(seed)
    series: list[Series] = []
    for node in range(count):
        instance = f"{prefix}.{node // 250 % 250}.{node % 250 + 1}:9100"
        of_node = _instance_series(instance, f"prod-eu-west-1-{node % FLEET_CLUSTERS:02d}", rng)
        series.append(of_node[node % len(of_node)])
    return series


# The two shapes of request the benchmark sends: series grouped by target (a node's series
# together, as one queue shard of a Prometheus scraping them sends), and one series per target.
SHAPES = {"grouped by target": node_series, "one series per target": fleet_series}


def _advance(series: Series, rng: random.Random) -> float:
    if series.counter:
        series.value += rng.uniform(0, 1e6) * math.pi
    else:
        series.value = abs(series.value + rng.gauss(0, 1e8))
    return series.value


class Workload:
    """Pre-built requests: `request(set, round)` -> snappy-compressed WriteRequest bytes."""

    def __init__(self, sets: int, rounds: int, series_per_request: int, now_ms: int, seed: int = 42,
                 shape: str = "grouped by target") -> None:
        self.sets = sets
        self.rounds = rounds
        self.series_per_request = series_per_request
        rng = random.Random(seed + 1)
        universe = SHAPES[shape](sets * series_per_request, seed)
        # Every timestamp is at most `now_ms`: round r is r scrape intervals after the first one.
        first_ms = now_ms - (rounds - 1) * SCRAPE_INTERVAL_MS
        self._bodies: dict[tuple[int, int], bytes] = {}
        self.value_sums: dict[tuple[int, int], float] = {}
        self.raw_bytes = 0
        for index in range(sets):
            group = universe[index * series_per_request:(index + 1) * series_per_request]
            message = WriteRequest()
            samples = []
            for item in group:
                ts = message.timeseries.add()
                for name, value in item.labels:
                    label = ts.labels.add()
                    label.name = name
                    label.value = value
                samples.append(ts.samples.add())
            # Each node's scrape lands at its own offset within the interval, as in Prometheus.
            offsets = [zlib.crc32(dict(item.labels)["instance"].encode()) % 1000 for item in group]
            for round_index in range(rounds):
                base_ms = first_ms + round_index * SCRAPE_INTERVAL_MS
                values = []
                for item, sample, offset in zip(group, samples, offsets, strict=True):
                    sample.value = _advance(item, rng)
                    sample.timestamp = base_ms - offset
                    values.append(sample.value)
                raw = message.SerializeToString()
                self.raw_bytes = max(self.raw_bytes, len(raw))
                self._bodies[(index, round_index)] = snappy.compress(raw)
                self.value_sums[(index, round_index)] = math.fsum(values)

    def request(self, set_index: int, round_index: int) -> bytes:
        return self._bodies[(set_index, round_index)]

    def round(self, round_index: int) -> list[tuple[bytes, float]]:
        """The requests of one round, with the sum of their sample values."""
        return [(self._bodies[(s, round_index)], self.value_sums[(s, round_index)]) for s in range(self.sets)]


def large_request(limit_bytes: int, now_ms: int, seed: int = 7) -> tuple[bytes, int, int, float]:
    """A WriteRequest just under `limit_bytes` serialized, with long-ish label values.

    Series look like node-exporter's on Kubernetes nodes, where mount points and device names
    are long (~450 bytes of labels per series). Returns (snappy body, serialized size, series,
    sum of values).
    """
    rng = random.Random(seed)
    message = WriteRequest()
    total = 0
    count = 0
    values = []
    node = 0
    while True:
        pod = f"{rng.getrandbits(128):032x}"
        uid = f"{pod[:8]}-{pod[8:12]}-{pod[12:16]}-{pod[16:20]}-{pod[20:]}"
        instance = f"ip-10-{node // 250 % 250}-{node % 250}-{count % 200}.eu-west-1.compute.internal:9100"
        labels = sorted([
            ("__name__", "node_filesystem_avail_bytes"),
            ("cluster", "prod-eu-west-1-platform-shared-services"),
            ("device", f"/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0{pod[:17]}"),
            ("fstype", "ext4"),
            ("instance", instance),
            ("job", "kubernetes-service-endpoints/node-exporter"),
            ("mountpoint", f"/var/lib/kubelet/pods/{uid}/volumes/kubernetes.io~csi/pvc-{uid}/mount"),
            ("namespace", f"team-{count % 97:02d}-observability-workloads"),
        ])
        ts = message.timeseries.add()
        for name, value in labels:
            label = ts.labels.add()
            label.name = name
            label.value = value
        sample = ts.samples.add()
        sample.value = rng.uniform(0, 5e11)
        sample.timestamp = now_ms - rng.randrange(0, SCRAPE_INTERVAL_MS)
        size = ts.ByteSize()
        entry = 1 + _varint_len(size) + size
        if total + entry > limit_bytes:
            del message.timeseries[-1]
            break
        total += entry
        values.append(sample.value)
        count += 1
        if count % 200 == 0:
            node += 1
    raw = message.SerializeToString()
    assert len(raw) == total <= limit_bytes, (len(raw), total)
    return snappy.compress(raw), len(raw), count, math.fsum(values)


def _varint_len(value: int) -> int:
    length = 1
    while value >= 0x80:
        value >>= 7
        length += 1
    return length
