package sqlite

// BatchStats returns how many batches the writer committed and how many
// writes they held, so the benchmarks can report the batch size.
func (s *Store) BatchStats() (batches, writes int64) {
	return s.batches.Load(), s.batchedWrites.Load()
}
