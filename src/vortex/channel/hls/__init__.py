"""The channel's media side: one continuous H.264 + AAC encoder cut into a Low-Latency HLS stream.

writer.py (``HlsChannelWriter``: the stream in a folder) builds on feed.py (a slot going into the
encoders), spool.py (a made-ahead slot waiting for air), encoder.py, cutter.py (parts and
segments), fmp4.py, publish.py and playlist.py; pacing.py hands frames over with the wall clock;
subtitles.py writes master.m3u8 and the WebVTT caption rendition beside the media playlist.
Nothing here knows of schedules, slots' checks or live inserts: that is the on-air side (``vortex.channel``).
"""

from .feed import AppendedSlot, HlsLiveSink, SlotFeed
from .playlist import MediaPlaylist, OpenSegment, PlaylistPart, PlaylistSegment, parse_playlist, read_playlist
from .publish import PublishedPart
from .spool import SlotSpool, read_mp4_slot, read_spool
from .writer import HlsChannelWriter

__all__ = ["AppendedSlot", "HlsChannelWriter", "HlsLiveSink", "MediaPlaylist", "OpenSegment", "PlaylistPart",
           "PlaylistSegment", "PublishedPart", "SlotFeed", "SlotSpool", "parse_playlist", "read_mp4_slot",
           "read_playlist", "read_spool"]
