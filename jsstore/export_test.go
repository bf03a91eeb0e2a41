package jsstore

import (
	"context"
)

// CorruptRun writes an undecodable value under the key of run id, as a
// damaged disk or a careless person would.
func CorruptRun(ctx context.Context, s *Store, id string) error {
	_, err := s.part(id).kv.Put(ctx, runKey(id), []byte(`{"head": [truncated`))
	return err
}

// PretendWrittenAhead makes s believe it wrote run id at a revision ahead
// of the stream's, as when the leader answering it was newly elected and
// has not applied that write yet.
func PretendWrittenAhead(s *Store, id string, by uint64) {
	s.lastWrites.update(id, func(lw lastWrite) lastWrite { lw.rev += by; return lw })
}
