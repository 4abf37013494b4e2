"""Records of one destination -> WriteRecords calls whose records share as many dimensions as
possible, whatever order the sender put its series in.

Timestream bills each call by its size in KiB, and dimensions that every record of a call has
go to `CommonAttributes`, where they count once per call instead of once per record. Prometheus
adds its external labels and the target's `job` and `instance` to every series it sends, so the
records of one scrape target share most of their dimensions. But Prometheus shards series by
hash across its queues: a request mixes targets, and cutting it into calls in request order
leaves little for every record of a call to share.

So each request's records are grouped by their pairs whose name every series of the destination
has, among those that at least a call's worth of series have: for Prometheus, the external
labels and the target's `job`, `instance` and whatever relabelling puts on the whole target.
A group fills calls of at most 100 records on its own, each ended under a KiB boundary when
the group leaves room for it; what is left of each group (under 100 records) is packed with its
neighbours in group order unless a call of its own pays for itself: the write units it saves
must cost more than the Lambda time one more call takes (call_cost.py, one objective in
dollars). Calls never change which records are sent, only which records share a call.

Cost: one dictionary lookup per series per request (the group of a series is remembered, keyed
by the series cache's object for it), a sort of the request's few groups, and a sum over the
records of the calls whose ends are chosen; linear in the request's samples.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from chalicelib.destinations import Destination
from chalicelib.liveanalytics.call_cost import DEFAULT_PRICES, CallPrices
from chalicelib.liveanalytics.metering import WRITE_UNIT_BYTES, dimensions_bytes, records_bytes, units
from chalicelib.liveanalytics.records import MappedSeries, Record

MAX_RECORDS_PER_CALL = 100
# A (name, value) pair can be part of a group's identity once this many series have it: enough
# to fill a call on their own.
GROUP_MIN_SERIES = MAX_RECORDS_PER_CALL

Pairs = tuple[tuple[str, str], ...]
Shared = frozenset[tuple[str, str]]

# Series whose group is remembered, per destination; cleared when full, like the series cache.
_MAX_REMEMBERED_SERIES = 65_536
# Destinations whose state is kept (a few in practice; bounded against hostile routing labels).
_MAX_DESTINATIONS = 64


# Metered bytes of the shared sets weighed recently: a request weighs the same few dozen sets
# (its groups', and what neighbouring groups share) again and again.
_MAX_SHARED_SETS = 4096
_shared_bytes: dict[Shared, int] = {}


class _Leftover:
    """Records of one or more groups packed into one call, with what they all share."""

    __slots__ = ("records", "shared", "_own_bytes")

    def __init__(self, records: list[Record], shared: Shared, own_bytes: int | None = None) -> None:
        self.records = records
        self.shared = shared
        self._own_bytes = own_bytes

    @property
    def own_bytes(self) -> int:
        """Metered bytes of the records with nothing shared (summed only when a merge is weighed)."""
        if self._own_bytes is None:
            self._own_bytes = sum(records_bytes(self.records))
        return self._own_bytes

    def units(self) -> int:
        shared_bytes = _shared_bytes.get(self.shared)
        if shared_bytes is None:
            if len(_shared_bytes) >= _MAX_SHARED_SETS:
                _shared_bytes.clear()
            shared_bytes = _shared_bytes[self.shared] = dimensions_bytes(self.shared)
        return units(self.own_bytes - (len(self.records) - 1) * shared_bytes)


class Call(list[Record]):
    """The records of one WriteRecords call, with pairs every one of them has (those of their
    group), so that the body need not look for those in every record again (see write_body);
    `attributes` keeps what write_body found the call shares, for the call's metering."""

    __slots__ = ("shared", "attributes")

    def __init__(self, records: list[Record], shared: Shared = frozenset()) -> None:
        super().__init__(records)
        self.shared = shared
        self.attributes: tuple[tuple[tuple[str, str], ...], str | None] | None = None


class _Group:
    """Series of one scrape target (or of one job, for small targets): their pairs that make the
    group, and every pair they all have."""

    __slots__ = ("key", "shared")

    def __init__(self, key: Pairs, dimensions: Pairs) -> None:
        self.key = key
        # More than the key when a label is on all of a target's series but not on every series
        # of the destination (two Prometheus servers with different external labels, say).
        # Only ever narrowed, and before a series joins: whoever holds the group can trust it
        # for every series that was in it when they looked.
        self.shared: Shared = frozenset(dimensions)


@dataclass
class _DestinationGroups:
    """What is learnt about one destination's series, to give each series a group.

    Prometheus puts the external labels and the target's labels (`job`, `instance`, and whatever
    relabelling adds to the whole target) on every series it sends; a metric's own labels
    (`cpu`, `le`, `device`...) are on some series only. So a series' group is its pairs whose
    name every series has had, among those that at least a call's worth of series have: one
    group per scrape target. A small target (or a label every series has but with a value per
    series) falls below the count: its series go with the rest of their job, since they could
    not fill a call alone anyway."""

    # Dimension names every series learnt so far has (None before the first).
    names: frozenset[str] | None = None
    # Pair -> how many of the series learnt so far have it (each series counted once).
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    counted: set[MappedSeries] = field(default_factory=set)
    # Series -> group, for what makes a group now; emptied whenever that changes.
    groups: dict[MappedSeries, _Group] = field(default_factory=dict)
    # Key -> group, for what makes a group now.
    by_key: dict[Pairs, _Group] = field(default_factory=dict)

    def learn(self, records: list[Record]) -> None:
        """Learn the series not seen before, then give every series of `records` a group
        computed from the same knowledge."""
        counted = self.counted
        if len(counted) >= _MAX_REMEMBERED_SERIES:
            counted.clear()
            self.counts.clear()
            self.names = None
            self._regroup()
        counts = self.counts
        names = self.names
        stale = False
        for series in dict.fromkeys(series for series, _, _ in records):
            if series in counted:
                continue
            counted.add(series)
            for pair in series.dimensions:
                count = counts.get(pair, 0) + 1
                counts[pair] = count
                stale = stale or count == GROUP_MIN_SERIES
            series_names = {name for name, _ in series.dimensions}
            if names is None:
                names = frozenset(series_names)
            elif not names <= series_names:
                names = names & series_names
        if stale or names != self.names:
            self.names = names
            self._regroup()
        groups = self.groups
        by_key = self.by_key
        least = GROUP_MIN_SERIES
        for series, _, _ in records:
            if series not in groups:
                dimensions = series.dimensions
                key = tuple([pair for pair in dimensions if pair[0] in names and counts[pair] >= least])
                group = by_key.get(key)
                if group is None:
                    group = by_key[key] = _Group(key, dimensions)
                elif not group.shared.issubset(dimensions):
                    group.shared = group.shared.intersection(dimensions)
                groups[series] = group

    def _regroup(self) -> None:
        """Forget every series' group (what makes a group has changed)."""
        self.groups.clear()
        # New group objects: requests still holding the old ones keep what they knew.
        self.by_key = {}


class CallPlanner:
    """Forms the WriteRecords calls of a request. One per process: it remembers, per
    destination, which group each series belongs to."""

    def __init__(self, prices: CallPrices = DEFAULT_PRICES) -> None:
        self._prices = prices
        self._destinations: dict[Destination, _DestinationGroups] = {}
        # Learning changes shared state; concurrent requests take turns (the lookups do not).
        self._lock = threading.Lock()

    def calls(self, destination: Destination, records: list[Record]) -> list[list[Record]]:
        """`records` (all for `destination`) as calls of 1 to 100 records: every record exactly
        once, records of one group together."""
        if len(records) <= 1:
            return [records] if records else []
        state = self._destinations.get(destination)
        if state is None:
            if len(self._destinations) >= _MAX_DESTINATIONS:
                self._destinations.clear()
            state = self._destinations.setdefault(destination, _DestinationGroups())
        by_group = self._by_group(state, records)
        if by_group is None:
            with self._lock:
                state.learn(records)
                # Nothing learns in between (same lock): every series has a group.
                by_group = self._by_group(state, records)
        if by_group is None:
            return chunks(records)
        calls: list[list[Record]] = []
        leftovers: list[_Leftover] = []
        for group in sorted(by_group, key=_group_key):
            grouped = by_group[group]
            shared = group.shared
            if len(grouped) > MAX_RECORDS_PER_CALL:
                grouped = _fill(grouped, shared, calls)
            leftovers.append(_Leftover(grouped, shared))
        calls.extend(Call(leftover.records, leftover.shared) for leftover in _pack(leftovers, self._prices))
        return calls

    @staticmethod
    def _by_group(state: _DestinationGroups, records: list[Record]) -> dict[_Group, list[Record]] | None:
        """Records by group, in request order within each; None if a series has no group (new,
        or the groups were forgotten since)."""
        found = list(map(state.groups.get, [record[0] for record in records]))
        if None in found:
            return None
        first = found[0]
        if found[-1] is first and found.count(first) == len(found):
            return {first: records}
        by_group: dict[_Group, list[Record]] = {}
        previous = None
        append = None
        for record, group in zip(records, found, strict=True):
            # Consecutive records usually belong to one target: skip the lookup.
            if group is not previous:
                previous = group
                grouped = by_group.get(group)
                if grouped is None:
                    grouped = by_group[group] = []
                append = grouped.append
            append(record)
        return by_group


def _group_key(group: _Group) -> Pairs:
    return group.key


def chunks(records: list[Any]) -> list[list[Any]]:
    """Calls of at most MAX_RECORDS_PER_CALL records in request order, for records that are not
    grouped (the first sight of a destination's series, MULTI records)."""
    size = MAX_RECORDS_PER_CALL
    return [records[start:start + size] for start in range(0, len(records), size)]


def _fill(records: list[Record], shared: Shared, calls: list[list[Record]]) -> list[Record]:
    """Cut one group's records into as few calls as it needs, appended to `calls`, and return
    the last (1 to 100 records).

    Each call is billed in whole KiB. When the group does not fill its calls exactly, the room
    left is used to end calls just under a KiB boundary instead of just over one: the same
    number of calls, a unit less for each call cut so."""
    count = -(-len(records) // MAX_RECORDS_PER_CALL)
    room = count * MAX_RECORDS_PER_CALL - len(records)
    shared_bytes = dimensions_bytes(shared)
    start = 0
    for _ in range(count - 1):
        end = start + MAX_RECORDS_PER_CALL
        if room:
            end = _end_under_boundary(records, start, end, end - room, shared_bytes)
            room -= start + MAX_RECORDS_PER_CALL - end
        calls.append(Call(records[start:end], shared))
        start = end
    return records[start:]


def _end_under_boundary(records: list[Record], start: int, end: int, earliest: int, shared_bytes: int) -> int:
    """Where to end the call records[start:end] (no earlier than `earliest`) to bill a unit less,
    or `end` if no such place exists."""
    sizes = records_bytes(records[start:end])
    # Each record adds its own size less the dimensions the call shares.
    size = sum(sizes) - (len(sizes) - 1) * shared_bytes
    target = (units(size) - 1) * WRITE_UNIT_BYTES
    cut = end
    while cut > earliest and size > target:
        cut -= 1
        size -= sizes[cut - start] - shared_bytes
    return cut if size <= target else end


def _pack(leftovers: list[_Leftover], prices: CallPrices) -> list[_Leftover]:
    """Pack neighbouring leftovers into one call unless separate calls cost less in all: a record
    added to a call loses, for every record, what the newcomer does not share, and that may be
    worth more write units than the call it saves is worth in Lambda time."""
    packed: list[_Leftover] = []
    current: _Leftover | None = None
    for leftover in leftovers:
        if current is not None and len(current.records) + len(leftover.records) <= MAX_RECORDS_PER_CALL:
            merged = _Leftover(current.records + leftover.records, current.shared & leftover.shared,
                               current.own_bytes + leftover.own_bytes)
            if not prices.split_pays(merged.units() - current.units() - leftover.units(), 1):
                current = merged
                continue
        if current is not None:
            packed.append(current)
        current = leftover
    if current is not None:
        packed.append(current)
    return packed
