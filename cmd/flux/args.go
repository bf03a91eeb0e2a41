package main

import (
	"flag"
	"strings"
)

// parseArgs parses args with fs and returns the positional arguments.
// Unlike fs.Parse, which stops at the first argument that is not a flag, it
// accepts flags before, between and after the positional arguments, so that
// `flux runs show ID --db PATH` works as well as `flux runs show --db PATH ID`.
// An argument "--" ends the flags: everything after it is positional. An
// unknown flag is an error, wherever it stands.
//
// After parseArgs, fs.Args and fs.NArg describe only the last stretch of
// arguments: use the returned slice instead.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if endedFlags(fs, args[:len(args)-len(rest)]) {
			return append(pos, rest...), nil
		}
		// fs.Parse stopped at a positional argument: keep it and go on
		// parsing after it.
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// endedFlags reports whether the arguments fs.Parse consumed end with the
// terminator "--" rather than with a flag's value that happens to be "--"
// (as in --workflow --). It walks them as fs.Parse did: each is a flag,
// followed by its value unless it is a bool flag or holds its value after
// "=".
func endedFlags(fs *flag.FlagSet, consumed []string) bool {
	for i := 0; i < len(consumed); i++ {
		s := consumed[i]
		if s == "--" {
			return i == len(consumed)-1
		}
		name := strings.TrimLeft(s, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
				continue
			}
		}
		i++ // the flag's value
	}
	return false
}

// shellQuote returns s as one word of a POSIX shell command line: as is when
// it holds only characters no shell treats specially, single-quoted
// otherwise.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_@%+=:,./-", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
