"""Marathon provider: decoding, labels, state, the event stream client."""
