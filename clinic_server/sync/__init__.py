"""Server side of the sync protocol: push (apply mutations), pull (change log), snapshot."""
