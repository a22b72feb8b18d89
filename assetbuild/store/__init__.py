"""What is kept: the cache and the shared remote, the lock, atomic files, hashes."""
