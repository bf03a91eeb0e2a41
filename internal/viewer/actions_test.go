package viewer

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/flux-go/flux"
)

// TestActionsAPI: /api/actions tells the page whether to show its buttons:
// never without Options.Actions (flux dev), and per request with it.
func TestActionsAPI(t *testing.T) {
	src := NewStorageSource(newEngine(t, flux.Config{}).Storage(), "test", StorageOptions{})
	var a actionsInfo
	if res := get(t, serve(t, src), "/api/actions", &a); res.StatusCode != 200 || a.Enabled || a.Base != "" {
		t.Errorf("without Actions: %d %+v, want 200 and disabled", res.StatusCode, a)
	}
	v := New(src, Options{Actions: &Actions{Base: "../", Allowed: func(r *http.Request) bool { return r.Header.Get("X-Ok") == "1" }}})
	ts := httptest.NewServer(v)
	t.Cleanup(func() {
		v.Close()
		ts.Close()
	})
	if get(t, ts, "/api/actions", &a); a.Enabled {
		t.Errorf("a request Allowed refuses: %+v, want disabled", a)
	}
	req, _ := http.NewRequest("GET", ts.URL+"/api/actions", nil)
	req.Header.Set("X-Ok", "1")
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	a = actionsInfo{}
	if err := json.NewDecoder(res.Body).Decode(&a); err != nil || !a.Enabled || a.Base != "../" {
		t.Errorf("a request Allowed allows: %+v, %v; want enabled with base ../", a, err)
	}
}
