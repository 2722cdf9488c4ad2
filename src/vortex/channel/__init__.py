"""The always-on channel: a schedule of recipes aired as one live HLS stream.

On air (this package): scheduler.py (``ChannelRunner``: the generator thread, the files, the
records), appender.py (the thread that airs decided slots and live inserts), handoff.py (what the
two hand each other), policy.py (the decisions, pure functions), live.py and delay.py (live
inserts), definition.py, records.py (channel.json), filler.py, fencing.py. The media side is
``vortex.channel.hls``: the writer, the encoder, parts, fMP4, the playlist, the spool.
"""
