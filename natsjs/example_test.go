package natsjs_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/natsjs"
	"github.com/flux-go/flux/trigger"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Each message on the ORDERS stream starts one run of the charge
// workflow. The run ID is the message's Nats-Msg-Id (or ORDERS/<sequence>
// without one), so a message delivered twice starts one run.
func ExampleRun() {
	// An embedded server, so that the example runs; connect to yours.
	dir, _ := os.MkdirTemp("", "natsjs-example")
	defer os.RemoveAll(dir)
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	srv.Start()
	defer srv.Shutdown()
	srv.ReadyForConnections(10 * time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	// File storage; in a cluster, Replicas: 3.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}, Storage: jetstream.FileStorage}); err != nil {
		fmt.Println(err)
		return
	}

	type order struct {
		ID     string  `json:"id"`
		Amount float64 `json:"amount"`
	}
	type charged struct{ Receipt string }
	charges := make(chan string, 1)
	charge := flux.New[order, charged]("charge").
		Commit("charge", func(c *flux.Ctx[order, charged]) error {
			c.Data.Receipt = fmt.Sprintf("charged %s %.2f", c.Input.ID, c.Input.Amount)
			charges <- c.RunID()
			return nil
		})
	engine, err := flux.NewEngine(flux.Config{Workers: 4, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer engine.Close()
	t, err := trigger.New(engine, charge, trigger.Options[order]{})
	if err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan error, 1)
	go func() {
		done <- natsjs.Run(ctx, js, natsjs.Config{Stream: "ORDERS", Consumer: "charge"}, t)
	}()

	msg := nats.NewMsg("orders.created")
	msg.Data = []byte(`{"id":"o-1","amount":12.5}`)
	msg.Header.Set(jetstream.MsgIDHeader, "order-o-1")
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		fmt.Println(err)
		return
	}
	id := <-charges
	res, err := flux.Wait(ctx, engine, charge, id)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(id, res.Status, res.Data.Receipt)
	cancel()
	fmt.Println("Run returned", <-done)
	// Output:
	// order-o-1 completed charged o-1 12.50
	// Run returned <nil>
}
