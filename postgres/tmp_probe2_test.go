package postgres_test

import (
	"fmt"
	"testing"

	"github.com/flux-go/flux/postgres"
)

func BenchmarkWritersProbe(b *testing.B) {
	for _, w := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("W=%d", w), func(b *testing.B) { benchUpdate(b, 32, postgres.Writers(w)) })
	}
}
