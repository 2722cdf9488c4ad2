"""The always-on channel's media layer: one continuous H.264 + AAC encoder cut into a live HLS stream."""

from .feed import HlsSlotSink, read_mp4_slot
from .hls import AppendedSlot, HlsChannelWriter
from .playlist import MediaPlaylist, PlaylistSegment, parse_playlist, read_playlist

__all__ = ["AppendedSlot", "HlsChannelWriter", "HlsSlotSink", "MediaPlaylist", "PlaylistSegment",
           "parse_playlist", "read_mp4_slot", "read_playlist"]
