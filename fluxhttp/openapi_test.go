package fluxhttp

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flux-go/flux"
)

// TestOpenAPIMatchesRoutes walks the document's paths and methods and the
// handler's routes: each must have the other.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Fatalf("openapi %q, want 3.1.x", doc.OpenAPI)
	}
	var inDoc, served []string
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				inDoc = append(inDoc, strings.ToUpper(method)+" "+path)
			}
		}
	}
	for _, r := range routes {
		served = append(served, r.method+" "+r.path)
	}
	slices.Sort(inDoc)
	slices.Sort(served)
	for _, op := range served {
		if !slices.Contains(inDoc, op) {
			t.Errorf("the handler serves %s, the document does not describe it", op)
		}
	}
	for _, op := range inDoc {
		if !slices.Contains(served, op) {
			t.Errorf("the document describes %s, the handler does not serve it", op)
		}
	}
}

// TestOpenAPIValid validates the served document with
// @seriousme/openapi-schema-validator (testdata/package.json). It needs
// node and testdata/node_modules (npm ci in testdata): without them it is
// skipped, unless CI is set.
func TestOpenAPIValid(t *testing.T) {
	node, err := exec.LookPath("node")
	_, merr := os.Stat(filepath.Join("testdata", "node_modules", "@seriousme", "openapi-schema-validator"))
	if err != nil || merr != nil {
		msg := "needs node and testdata/node_modules: run npm ci --no-audit --no-fund --prefix fluxhttp/testdata"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	e, err := flux.NewEngine(flux.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	h, err := New(Config{Engine: e})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	file := filepath.Join(t.TempDir(), "openapi.json")
	if err := os.WriteFile(file, rec.Body.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(node, filepath.Join("testdata", "validate.mjs"), file).CombinedOutput()
	if err != nil {
		t.Fatalf("the validator refused the document: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "valid OpenAPI 3.1") {
		t.Fatalf("validator said %s", out)
	}
}
