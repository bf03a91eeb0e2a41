package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/flux-go/flux"
)

func TestMultiNode(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	o, err := run(t.Context(), &out)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	node := map[Channel]string{Email: "send-email", Slack: "send-slack", Webhook: "call-webhook"}
	box := map[Channel]*outbox{Email: o.Email, Slack: o.Slack, Webhook: o.Webhook}
	if len(o.Results) != len(sampleInputs) {
		t.Fatalf("%d results, want %d", len(o.Results), len(sampleInputs))
	}
	for i, in := range sampleInputs {
		res := o.Results[i]
		if res.Status != flux.StatusCompleted || res.Data.Route != in.Type || res.Data.DeliveryID == "" {
			t.Errorf("%s: run %s, data %+v; want completed, routed to %s with a delivery ID", in.Type, res.Status, res.Data, in.Type)
		}
		for _, st := range res.Steps {
			want := flux.StatusCompleted
			for ch, name := range node {
				if st.Name == name && ch != in.Type {
					want = flux.StatusSkipped
				}
			}
			if st.Status != want {
				t.Errorf("%s: %s is %s, want %s", in.Type, st.Name, st.Status, want)
			}
		}
		// Each channel got exactly its own message.
		if items := box[in.Type].Items(); len(items) != 1 || items[0] != string(in.Payload) {
			t.Errorf("%s outbox = %q, want only %s", in.Type, items, in.Payload)
		}
	}

	audit := o.Audit.Items()
	if len(audit) != len(sampleInputs) {
		t.Fatalf("audit log has %d entries, want %d", len(audit), len(sampleInputs))
	}
	for i, e := range audit {
		var d Data
		if err := json.Unmarshal([]byte(e), &d); err != nil || d != o.Results[i].Data {
			t.Errorf("audit entry %d = %s (err %v), want the run's data %+v", i, e, err, o.Results[i].Data)
		}
	}

	if !errors.Is(o.Invalid, flux.ErrInvalidInput) || !strings.Contains(o.Invalid.Error(), `"sms"`) {
		t.Errorf("sms: err = %v, want flux.ErrInvalidInput naming the type", o.Invalid)
	}
}
