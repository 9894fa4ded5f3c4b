//! Partition log storage.
