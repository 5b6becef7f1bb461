"""CompressAI codecs (filled in by the neural-codec work)."""
