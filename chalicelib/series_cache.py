"""What each series' labels map to, remembered per process, for any engine.

Prometheus sends the same series in every request, so the label checks and routing are done once
per series per process instead of once per sample, and no Python object is made per label on a
hit. What a series maps to is the engine's business (`map_labels`); how it is found from either
remote write message is the protocol's, and lives here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from chalicelib.destinations import Labels
from chalicelib.prompb.remote_write_v2_pb2 import Histogram
from chalicelib.series import (
    bad_reference,
    check_exemplar_refs,
    exemplar_v1,
    exemplar_v2,
    odd_references,
    parse_labels,
    request_symbols,
)

Mapped = TypeVar("Mapped")
# An exemplar as every engine takes it: (value, timestamp in ms, labels).
Exemplar = tuple[float, int, list[tuple[str, str]]]


def _same(histogram: Any) -> Any:
    return histogram


@dataclass(frozen=True)
class SeriesReader(Generic[Mapped]):
    """How to read the series of one request, whichever message it is: what a series maps to,
    its histogram entries as 2.0 Histogram messages (1.0 sends them serialised), its exemplar
    entries as Exemplars, and for 2.0 a check of the exemplars' symbol references."""

    timeseries: Any
    mapped_of: Callable[[Any], Mapped]
    histogram_of: Callable[[Any], Any]
    exemplar_of: Callable[[Any], Exemplar]
    check_exemplars: Callable[[Any], None] | None = None


class SeriesCache(Generic[Mapped]):
    """Remembers what each label set maps to, keyed by a value made cheaply from the message.

    The key is the labels' serialised bytes for 1.0 (a tuple of bytes) and the label strings for
    2.0 (a tuple of str: name, value, name, value...); the two never compare equal, so one cache
    serves both. Bounded: cleared when full (and `on_clear` called, for whatever the mapping
    keeps beside it), which costs one re-check per series rather than an LRU's bookkeeping on
    every hit.
    """

    def __init__(
        self,
        map_labels: Callable[[Labels], Mapped],
        max_entries: int,
        on_clear: Callable[[], None] | None = None,
    ) -> None:
        self._map_labels = map_labels
        self._max_entries = max_entries
        self._on_clear = on_clear
        self._entries: dict[tuple[bytes, ...] | tuple[str, ...], Mapped] = {}

    def lookup(self, serialized_labels: tuple[bytes, ...]) -> Mapped:
        """The mapping of a 1.0 series, by its labels' serialised bytes."""
        mapped = self._entries.get(serialized_labels)
        if mapped is None:
            # First sight of this series (or the cache was cleared): route and check it.
            mapped = self._add(serialized_labels, parse_labels(serialized_labels))
        return mapped

    def reader_v1(self, timeseries: Any) -> SeriesReader[Mapped]:
        """The reader of 1.0 TimeSeriesLabelBytes (labels as serialised bytes, see codec)."""
        return SeriesReader(timeseries, self.resolver_v1(), Histogram.FromString, exemplar_v1)

    def reader_v2(self, request: Any) -> SeriesReader[Mapped]:
        """The reader of a 2.0 Request. A symbols table that does not start with "" is a
        BadRequest here; a reference outside it, when its series is read."""
        symbols = request_symbols(request)
        return SeriesReader(
            request.timeseries,
            self.resolver_v2(symbols),
            _same,
            exemplar_v2(symbols),
            check_exemplar_refs(symbols),
        )

    def resolver_v1(self) -> Callable[[Any], Mapped]:
        """A function mapping 1.0 TimeSeriesLabelBytes (one call per series: the hot loop's)."""
        entries = self._entries

        def resolve(series: Any) -> Mapped:
            key = tuple(series.labels)
            mapped = entries.get(key)
            if mapped is None:
                mapped = self._add(key, parse_labels(key))
            return mapped

        return resolve

    def resolver_v2(self, symbols: list[str]) -> Callable[[Any], Mapped]:
        """A function mapping the 2.0 TimeSeries of one request, whose symbols table is
        `symbols`. It checks the symbol references of the series' labels and metadata (those of
        its exemplars: `series.check_exemplar_refs`) and raises BadRequest for one that does
        not resolve."""
        entries = self._entries
        symbol = symbols.__getitem__
        size = len(symbols)

        def resolve(series: Any) -> Mapped:
            try:
                # The label strings themselves: a reference is only meaningful within its request.
                key = tuple(map(symbol, series.labels_refs))
            except IndexError:
                raise bad_reference("labels_refs", series.labels_refs, size) from None
            metadata = series.metadata
            if metadata.help_ref >= size or metadata.unit_ref >= size:
                raise bad_reference("metadata", [metadata.help_ref, metadata.unit_ref], size)
            mapped = entries.get(key)
            if mapped is None:
                # A key seen before had an even length (odd ones are never stored): check here only.
                if len(key) % 2:
                    raise odd_references("labels_refs", len(key))
                mapped = self._add(key, list(zip(key[::2], key[1::2], strict=True)))
            return mapped

        return resolve

    def _add(self, key: tuple[bytes, ...] | tuple[str, ...], labels: Labels) -> Mapped:
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
            if self._on_clear is not None:
                self._on_clear()
        mapped = self._map_labels(labels)
        self._entries[key] = mapped
        return mapped
