package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestBenchCPUProfile: --cpuprofile writes a profile (gzip-compressed, as
// pprof writes them) for Flux's W1 and for the raw baseline beside it, so
// that the two can be profiled side by side.
func TestBenchCPUProfile(t *testing.T) {
	dir := t.TempDir()
	for name, args := range map[string][]string{
		"w1":       {"--storage", "sqlite", "--db", filepath.Join(dir, "w1.db"), "--workflows", "200", "--sequential", "10"},
		"baseline": {"--baseline", "--storage", "sqlite", "--db", filepath.Join(dir, "base.db"), "--workflows", "200"},
	} {
		prof := filepath.Join(dir, name+".prof")
		if err := runBench(context.Background(), append(args, "--cpuprofile", prof)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err := os.ReadFile(prof)
		if err != nil {
			t.Fatalf("%s: no profile written: %v", name, err)
		}
		if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
			t.Fatalf("%s: %s does not hold a gzip-compressed profile (%d bytes)", name, prof, len(b))
		}
	}
}
