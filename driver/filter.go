package driver

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Filter selects runs for List. Zero fields match everything.
type Filter struct {
	Workflow string
	Status   []Status
	Since    time.Time // created at or after
	Until    time.Time // created before
	// Search keeps the runs whose ID starts with it, whose workflow is it,
	// or whose error has each of its words (see [SearchWords]): each word
	// of the search matches a word of the error that starts with it, in
	// any case. Stores answer it with indexes, so it covers every run.
	Search string
	Limit  int    // default 50, at most 1000
	Cursor string // RunPage.Next of the previous page
}

// RunPage is one page of a List.
type RunPage struct {
	// Runs are the runs of the page, newest first, without their nodes
	// (Run.Steps) and data (Run.Data): Store.Get reads those.
	Runs []*Run
	// Next is the cursor of the following page, "" on the last one.
	Next string
	// Corrupt holds one error wrapping ErrCorrupt for each matching run that
	// could not be decoded; the other runs are still returned.
	Corrupt []error
}

// PageSize returns the page size f asks for, within bounds.
func (f Filter) PageSize() int {
	switch {
	case f.Limit <= 0:
		return 50
	case f.Limit > 1000:
		return 1000
	}
	return f.Limit
}

// Matches reports whether r passes the filter, ignoring Cursor and Limit.
func (f Filter) Matches(r *Run) bool {
	if f.Workflow != "" && r.Workflow != f.Workflow {
		return false
	}
	if len(f.Status) > 0 {
		ok := false
		for _, s := range f.Status {
			ok = ok || s == r.Status
		}
		if !ok {
			return false
		}
	}
	if !f.Since.IsZero() && r.CreatedAt.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !r.CreatedAt.Before(f.Until) {
		return false
	}
	return f.Search == "" || SearchMatches(f.Search, r)
}

// SearchMatches reports whether run r matches the search text s, as
// Filter.Search describes.
func SearchMatches(s string, r *Run) bool {
	if s == "" {
		return true
	}
	if strings.HasPrefix(r.ID, s) || r.Workflow == s {
		return true
	}
	words := QueryWords(s)
	if len(words) == 0 || r.Error == "" {
		return false
	}
	have := SearchWords(r.Error)
	for _, w := range words {
		found := false
		for _, h := range have {
			if strings.HasPrefix(h, w) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// maxQueryWords bounds the words of a search.
const maxQueryWords = 16

// SearchWords splits text into the words a search matches: runs of letters
// and digits, lower-cased.
func SearchWords(text string) []string {
	words := strings.FieldsFunc(text, func(c rune) bool { return !unicode.IsLetter(c) && !unicode.IsDigit(c) })
	for i, w := range words {
		words[i] = strings.ToLower(w)
	}
	return words
}

// QueryWords returns the words of a search text, as SearchWords, up to
// the first 16.
func QueryWords(search string) []string {
	words := SearchWords(search)
	return words[:min(len(words), maxQueryWords)]
}

// PrefixEnd returns the smallest string greater than every string that
// starts with prefix and goes on with a character below U+10FFFF: the upper
// bound of an index range over IDs that start with prefix.
func PrefixEnd(prefix string) string { return prefix + "\U0010FFFF" }

// Cursor is a position in the newest-first order of runs: by creation time,
// then by ID, both descending.
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// Before reports whether the cursor's run sorts before r, so r belongs on a
// later page.
func (c *Cursor) Before(r *Run) bool {
	if !r.CreatedAt.Equal(c.CreatedAt) {
		return r.CreatedAt.Before(c.CreatedAt)
	}
	return r.ID < c.ID
}

// MakeCursor returns the cursor of the page that follows run r.
func MakeCursor(r *Run) string {
	s := strconv.FormatInt(r.CreatedAt.UnixNano(), 10) + ":" + r.ID
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

// ParseCursor decodes a cursor made by [MakeCursor]; "" gives nil.
func ParseCursor(s string) (*Cursor, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		ns, id, ok := strings.Cut(string(b), ":")
		if n, perr := strconv.ParseInt(ns, 10, 64); ok && perr == nil {
			return &Cursor{CreatedAt: time.Unix(0, n), ID: id}, nil
		}
	}
	return nil, fmt.Errorf("flux: invalid list cursor %q: pass RunPage.Next unchanged", s)
}

// CompareNewestFirst orders runs newest first: by creation time, then by
// ID, both descending.
func CompareNewestFirst(a, b *Run) int {
	if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(b.ID, a.ID)
}
