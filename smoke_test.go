package flux_test

import (
	"context"
	"errors"
	"testing"

	"github.com/flux-go/flux"
)

type sIn struct{ N int }
type sData struct {
	A, B int
	Log  []string
}

func TestSmoke(t *testing.T) {
	fails := 0
	w := flux.New[sIn, sData]("smoke").
		Step("a", func(c *flux.Ctx[sIn, sData]) error { c.Data.A = c.Input.N; return nil }).
		Step("b", func(c *flux.Ctx[sIn, sData]) error {
			c.Data.Log = append(c.Data.Log, "try")
			if fails < 2 {
				fails++
				return errors.New("flaky")
			}
			c.Data.B = c.Data.A * 2
			return nil
		}, flux.NoBackoff()).
		Commit("c", func(c *flux.Ctx[sIn, sData]) error { return nil }, flux.When(func(c *flux.Ctx[sIn, sData]) bool { return false }))
	e, err := flux.NewEngine(flux.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	res, err := flux.Execute(context.Background(), e, w, sIn{N: 21})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Data.B != 42 || len(res.Data.Log) != 1 || res.Steps[1].Attempts[2].Number != 3 || res.Steps[2].Status != flux.StatusSkipped {
		t.Fatalf("bad %+v", res)
	}
}
