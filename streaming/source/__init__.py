"""The unified source: a topic's archive, then its live tail (docs/streaming.md)."""

from streaming.source.feed import PartitionFeed
from streaming.source.source import SourceError, TimestampExtractor, UnifiedSource

__all__ = ["PartitionFeed", "SourceError", "TimestampExtractor", "UnifiedSource"]
