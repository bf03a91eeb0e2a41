// Onboarding is the Flux quick start: a step that loads a user and a commit
// that sends the welcome email.
//
// load-user is a step: it only reads, so running it again after a crash is
// harmless. send-email is a commit: a side effect that must land once, so it
// hands the mailer its IdempotencyKey and the mailer sends once per key.
//
// Run it from the module root:
//
//	go run ./examples/onboarding
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/flux-go/flux"
)

// Input is the workflow's input.
type Input struct {
	UserID string `json:"userId"`
}

// User is a user of the fake directory.
type User struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// Data is what the steps record: the user that load-user found.
type Data struct {
	User *User `json:"user,omitempty"`
}

// newOnboarding returns the workflow, calling the given services.
func newOnboarding(users directory, mail *mailer) *flux.Workflow[Input, Data] {
	return flux.New[Input, Data]("onboarding").
		Step("load-user", func(c *flux.Ctx[Input, Data]) error {
			u, err := users.Find(c, c.Input.UserID)
			if err != nil {
				return err
			}
			c.Data.User = &u
			return nil
		}).
		Commit("send-email", func(c *flux.Ctx[Input, Data]) error {
			return mail.SendWelcome(c, c.IdempotencyKey(), *c.Data.User)
		})
}

func main() {
	if _, _, err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run onboards user u_123 and returns the run's result and the mailer.
func run(ctx context.Context, out io.Writer) (*flux.Result[Data], *mailer, error) {
	users := directory{"u_123": {ID: "u_123", Name: "Ada", Email: "ada@example.com"}}
	mail := &mailer{}

	engine, err := flux.NewEngine(flux.Config{}) // in-memory storage
	if err != nil {
		return nil, nil, err
	}
	defer engine.Close()

	res, err := flux.Execute(ctx, engine, newOnboarding(users, mail), Input{UserID: "u_123"})
	if err != nil {
		return res, mail, err
	}
	fmt.Fprintf(out, "run %s %s in %s\n", res.ID, res.Status, res.Duration.Round(time.Microsecond))
	for _, s := range res.Steps {
		fmt.Fprintf(out, "  %-10s %-6s %s\n", s.Name, s.Kind, s.Status)
	}
	for _, m := range mail.Sent() {
		fmt.Fprintf(out, "mailed %q to %s\n", m.Subject, m.To)
	}
	return res, mail, nil
}

// directory is a fake user directory.
type directory map[string]User

// errNoUser is the cause of a run for an unknown user.
var errNoUser = errors.New("no such user")

// Find returns the user with the given ID.
func (d directory) Find(ctx context.Context, id string) (User, error) {
	if err := ctx.Err(); err != nil {
		return User{}, err
	}
	u, ok := d[id]
	if !ok {
		// Retrying will not create the user: fail the step at once.
		return User{}, flux.Permanent(fmt.Errorf("%w: %q", errNoUser, id))
	}
	return u, nil
}

// mail is a message the fake mailer sent.
type mail struct{ To, Subject string }

// mailer is a fake mail service that sends once per idempotency key.
type mailer struct {
	mu   sync.Mutex
	keys map[string]bool
	sent []mail
}

// SendWelcome sends u the welcome email, unless key was seen before.
func (m *mailer) SendWelcome(ctx context.Context, key string, u User) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys[key] {
		return nil
	}
	if m.keys == nil {
		m.keys = make(map[string]bool)
	}
	m.keys[key] = true
	m.sent = append(m.sent, mail{To: u.Email, Subject: "Welcome, " + u.Name})
	return nil
}

// Sent returns the mails sent so far.
func (m *mailer) Sent() []mail {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]mail(nil), m.sent...)
}
