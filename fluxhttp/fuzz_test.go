package fluxhttp_test

import (
	"net/http"
	"testing"
)

// FuzzStartBody sends arbitrary bodies to the start endpoint: the handler
// must not panic, and must answer 202 or a 4xx problem, never a 5xx.
func FuzzStartBody(f *testing.F) {
	for _, s := range []string{
		`{"name":"a"}`, `{"name":""}`, `{"name":1}`, `{"name":"a","count":2,"tags":["x"]}`,
		`{"nope":1}`, `[]`, `null`, `"x"`, `{"name":"a"}{}`, `{`, ``, "\xff", `{"tags":[1,{}]}`,
		`{"count":1e400}`, `{"name":"\ud800"}`,
	} {
		f.Add(s)
	}
	b := setup(f)
	f.Fuzz(func(t *testing.T, body string) {
		r := do(t, b.handler, "POST", "/workflows/greet/runs", body)
		switch {
		case r.Code == http.StatusAccepted:
		case r.Code >= 400 && r.Code < 500:
			if r.body["status"] != float64(r.Code) || r.body["type"] == "" {
				t.Fatalf("status %d with body %s", r.Code, r.Body)
			}
		default:
			t.Fatalf("status %d for body %q: %s", r.Code, body, r.Body)
		}
	})
}
