package main

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/flux-go/flux"
)

func TestOnboarding(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	res, mail, err := run(t.Context(), &out)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.Status != flux.StatusCompleted {
		t.Fatalf("status = %s, want completed", res.Status)
	}
	want := []struct {
		name string
		kind flux.Kind
	}{{"load-user", flux.KindStep}, {"send-email", flux.KindCommit}}
	if len(res.Steps) != len(want) {
		t.Fatalf("%d steps, want %d: %+v", len(res.Steps), len(want), res.Steps)
	}
	for i, w := range want {
		s := res.Steps[i]
		if s.Name != w.name || s.Kind != w.kind || s.Status != flux.StatusCompleted || len(s.Attempts) != 1 {
			t.Errorf("step %d = %s %s %s with %d attempts, want %s %s completed with 1", i, s.Name, s.Kind, s.Status, len(s.Attempts), w.name, w.kind)
		}
	}
	if res.Data.User == nil || res.Data.User.Email != "ada@example.com" {
		t.Errorf("Data.User = %+v, want the user u_123 with email ada@example.com", res.Data.User)
	}
	sent := mail.Sent()
	if len(sent) != 1 || sent[0].To != "ada@example.com" {
		t.Errorf("mails sent = %+v, want one to ada@example.com", sent)
	}
	if !strings.Contains(out.String(), res.ID) {
		t.Errorf("output does not name run %s:\n%s", res.ID, out.String())
	}
}

// TestOnboardingUnknownUser checks that a missing user fails load-user at
// once (it is permanent) and that no mail is sent.
func TestOnboardingUnknownUser(t *testing.T) {
	t.Parallel()
	mail := &mailer{}
	engine, err := flux.NewEngine(flux.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close()
	res, err := flux.Execute(t.Context(), engine, newOnboarding(directory{}, mail), Input{UserID: "u_404"})
	if !errors.Is(err, errNoUser) {
		t.Fatalf("err = %v, want errNoUser", err)
	}
	if res.Status != flux.StatusFailed || res.Steps[0].Status != flux.StatusFailed || len(res.Steps[0].Attempts) != 1 {
		t.Errorf("run %s, load-user %s after %d attempts; want failed, failed, 1", res.Status, res.Steps[0].Status, len(res.Steps[0].Attempts))
	}
	if res.Steps[1].Status != flux.StatusPending {
		t.Errorf("send-email is %s, want pending", res.Steps[1].Status)
	}
	if n := len(mail.Sent()); n != 0 {
		t.Errorf("%d mails sent, want 0", n)
	}
}
