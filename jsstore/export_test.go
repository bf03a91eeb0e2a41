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
