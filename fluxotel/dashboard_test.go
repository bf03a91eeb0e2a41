package fluxotel_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

var (
	matchersRE    = regexp.MustCompile(`\{([^}]*)\}`)
	matcherNameRE = regexp.MustCompile(`(\w+)\s*(?:=~|!~|!=|=)`)
	groupingRE    = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	labelValuesRE = regexp.MustCompile(`label_values\(([^,)]*),\s*(\w+)\s*\)`)
	metricRE      = regexp.MustCompile(`\bflux_\w+`)
)

// queries returns the PromQL of a Grafana dashboard: the expr of its
// targets and the query and definition of its variables.
func queries(v any, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && (k == "expr" || k == "query" || k == "definition") {
				*out = append(*out, s)
				continue
			}
			queries(x, out)
		}
	case []any:
		for _, x := range v {
			queries(x, out)
		}
	}
}

// TestDashboardUsesServedMetrics checks that docs/grafana/flux.json asks
// only for metric families and labels that the handler serves.
func TestDashboardUsesServedMetrics(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../docs/grafana/flux.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("flux.json: %v", err)
	}
	var exprs []string
	queries(dash, &exprs)

	fams := scrape(t, promSetup(t).prom)
	metrics := make(map[string]bool)
	labelNames := map[string]bool{"le": true}
	for name, mf := range fams {
		metrics[name] = true
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				metrics[name+s] = true
			}
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				labelNames[l.GetName()] = true
			}
		}
	}

	used := make(map[string]bool)
	checkLabels := func(expr, list string, re *regexp.Regexp) {
		var names []string
		if re == nil {
			names = strings.Split(list, ",")
		} else {
			for _, m := range re.FindAllStringSubmatch(list, -1) {
				names = append(names, m[1])
			}
		}
		for _, n := range names {
			if n = strings.TrimSpace(n); n != "" && !labelNames[n] {
				t.Errorf("%s\nuses label %q, which no served metric has", expr, n)
			}
		}
	}
	for _, expr := range exprs {
		// Take the label names out, checking them, so that what is left
		// names metrics only.
		rest := labelValuesRE.ReplaceAllStringFunc(expr, func(s string) string {
			m := labelValuesRE.FindStringSubmatch(s)
			checkLabels(expr, m[2], nil)
			return m[1]
		})
		rest = matchersRE.ReplaceAllStringFunc(rest, func(s string) string {
			checkLabels(expr, s, matcherNameRE)
			return ""
		})
		rest = groupingRE.ReplaceAllStringFunc(rest, func(s string) string {
			checkLabels(expr, groupingRE.FindStringSubmatch(s)[1], nil)
			return ""
		})
		for _, name := range metricRE.FindAllString(rest, -1) {
			if !metrics[name] {
				t.Errorf("%s\nasks for %s, which the handler does not serve", expr, name)
			}
			used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")] = true
		}
	}
	// The dashboard shows what the package is for.
	for _, want := range []string{"flux_runs_started_total", "flux_runs_completed_total", "flux_runs_failed_total",
		"flux_step_duration_seconds", "flux_step_retries_total", "flux_runs_pending", "flux_runs_lease_lost_total"} {
		if !used[want] {
			t.Errorf("the dashboard does not use %s", want)
		}
	}
	if !slices.ContainsFunc(exprs, func(e string) bool { return strings.Contains(e, "histogram_quantile(0.99") }) {
		t.Error("the dashboard has no p99")
	}
}
