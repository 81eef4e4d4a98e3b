"""Everything about FFmpeg: finding the binary, probing it, parsing its progress output."""
