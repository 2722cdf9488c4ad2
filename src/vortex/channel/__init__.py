"""The always-on channel's media layer: one continuous H.264 + AAC encoder cut into a Low-Latency HLS stream."""

from .feed import HlsLiveSink, HlsSlotSink, SlotFeed, read_mp4_slot
from .hls import AppendedSlot, HlsChannelWriter
from .playlist import MediaPlaylist, OpenSegment, PlaylistPart, PlaylistSegment, parse_playlist, read_playlist
from .publish import PublishedPart

__all__ = ["AppendedSlot", "HlsChannelWriter", "HlsLiveSink", "HlsSlotSink", "MediaPlaylist", "OpenSegment",
           "PlaylistPart", "PlaylistSegment", "PublishedPart", "SlotFeed", "parse_playlist", "read_mp4_slot",
           "read_playlist"]
