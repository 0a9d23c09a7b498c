"""What a process does on its own host: private files written atomically, locks, stopping on a signal."""
