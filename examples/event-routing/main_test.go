package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/flux-go/flux"
)

func TestEventRouting(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	results, s, err := run(t.Context(), &out)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	want := []struct {
		event  string
		route  Route
		branch string // the one branch step that runs
	}{
		{"evt_1", RouteAuto, "auto-handle"},
		{"evt_2", RouteManual, "manual-review"},
		{"evt_3", RouteRisk, "risk-audit"},
	}
	if len(results) != len(want) {
		t.Fatalf("%d results, want %d", len(results), len(want))
	}
	branches := []string{"auto-handle", "manual-review", "risk-audit"}
	for i, w := range want {
		res := results[i]
		if res.Status != flux.StatusCompleted || res.Data.Route != w.route {
			t.Errorf("%s: run %s, route %q; want completed, %q", w.event, res.Status, res.Data.Route, w.route)
		}
		for _, st := range res.Steps {
			want := flux.StatusCompleted
			if slices.Contains(branches, st.Name) && st.Name != w.branch {
				want = flux.StatusSkipped
			}
			if st.Status != want {
				t.Errorf("%s: %s is %s, want %s", w.event, st.Name, st.Status, want)
			}
		}
		d := res.Data
		if got := [3]bool{d.Result != "", d.TicketID != "", d.AuditID != ""}; got != [3]bool{w.route == RouteAuto, w.route == RouteManual, w.route == RouteRisk} {
			t.Errorf("%s: data %+v; want only the %s branch's field set", w.event, d, w.branch)
		}
	}
	if got := s.Tickets.Items(); !slices.Equal(got, []string{"evt_2"}) {
		t.Errorf("tickets %v, want [evt_2]", got)
	}
	if got := s.Audits.Items(); !slices.Equal(got, []string{"evt_3"}) {
		t.Errorf("audits %v, want [evt_3]", got)
	}
	if got := s.Notifications.Items(); len(got) != 3 || got[2] != "evt_3 went risk" {
		t.Errorf("notifications %v, want 3 ending with %q", got, "evt_3 went risk")
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ev   Event
		want Route
	}{
		{Event{Type: "order.paid", AmountCents: riskThreshold - 1}, RouteAuto},
		{Event{Type: "order.paid", AmountCents: riskThreshold}, RouteRisk},
		{Event{Type: "order.refund-requested", AmountCents: riskThreshold}, RouteRisk},
		{Event{Type: "order.refund-requested", AmountCents: 1}, RouteManual},
		{Event{}, RouteManual},
	} {
		if got := classify(tc.ev); got != tc.want {
			t.Errorf("classify(%+v) = %q, want %q", tc.ev, got, tc.want)
		}
	}
}
