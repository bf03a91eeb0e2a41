package crashtest

import (
	"github.com/flux-go/flux"
	"github.com/flux-go/flux/sqlite"
)

// openSQLite opens the SQLite store at path, with its defaults
// (synchronous=FULL).
func openSQLite(path string) (flux.Storage, func(), error) {
	s, err := sqlite.Open(path)
	if err != nil {
		return nil, nil, err
	}
	return s, func() { _ = s.Close() }, nil
}
