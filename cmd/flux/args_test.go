package main

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args     []string
		pos      []string
		db, wf   string
		asJSON   bool
		errorHas string // "" when the arguments are fine
	}{
		{args: []string{"--db", "w.db", "ID"}, pos: []string{"ID"}, db: "w.db"},
		{args: []string{"ID", "--db", "w.db"}, pos: []string{"ID"}, db: "w.db"},
		{args: []string{"ID", "--db=w.db", "--json"}, pos: []string{"ID"}, db: "w.db", asJSON: true},
		{args: []string{"--json", "a", "--workflow", "shop", "b"}, pos: []string{"a", "b"}, wf: "shop", asJSON: true},
		{args: nil, pos: nil},
		// "--" ends the flags, even after a bool flag...
		{args: []string{"--json", "--", "-id", "--db", "x"}, pos: []string{"-id", "--db", "x"}, asJSON: true},
		// ...but not when it is a flag's value.
		{args: []string{"--workflow", "--", "ID", "--db", "w.db"}, pos: []string{"ID"}, wf: "--", db: "w.db"},
		{args: []string{"ID", "--nope"}, errorHas: "-nope"},
		{args: []string{"ID", "--db"}, errorHas: "-db"},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		db := fs.String("db", "", "")
		wf := fs.String("workflow", "", "")
		asJSON := fs.Bool("json", false, "")
		pos, err := parseArgs(fs, tc.args)
		if tc.errorHas != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errorHas) {
				t.Errorf("parseArgs(%q): error %v, want one naming %s", tc.args, err, tc.errorHas)
			}
			continue
		}
		if err != nil || !slices.Equal(pos, tc.pos) || *db != tc.db || *wf != tc.wf || *asJSON != tc.asJSON {
			t.Errorf("parseArgs(%q) = %q, %v with db %q workflow %q json %t; want %q with db %q workflow %q json %t",
				tc.args, pos, err, *db, *wf, *asJSON, tc.pos, tc.db, tc.wf, tc.asJSON)
		}
	}
}

func TestShellQuote(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"./data/w.db":        "./data/w.db",
		"completed,failed":   "completed,failed",
		"":                   "''",
		"my runs.db":         "'my runs.db'",
		"it's":               `'it'\''s'`,
		"postgres://u@h/d?x": "'postgres://u@h/d?x'",
		"$HOME;rm":           "'$HOME;rm'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
