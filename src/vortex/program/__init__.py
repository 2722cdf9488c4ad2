"""The program: what a channel airs around the engine's picture and sound (issue 21).

spec (the `program` block), graphics (layers rendered once), compose (the per-frame composite),
captions (cues from the speech timeline; WebVTT and mov_text), loudness (BS.1770 meter, gain,
true-peak limiter), markers (EXT-X-DATERANGE, SCTE-35). The channel's writer and the engine's MP4
output call it; it imports neither.
"""
