package postgres

// BatchStats returns how many group commits s made and how many writes they
// carried.
func BatchStats(s *Store) (batches, writes int64) { return s.batches.Load(), s.writes.Load() }
