package amqp_test

import (
	"context"
	"fmt"
	"log"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/amqp"
	"github.com/flux-go/flux/trigger"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// Each message on the orders queue starts one run of the charge workflow.
// The run ID is the message-id, so a message delivered twice starts one
// run. The producer publishes persistent messages on a confirm-mode
// channel and waits for the broker's confirmation: then the event is safe.
// It prints "completed charged o-1 12.50" (not run by go test: it needs
// a RabbitMQ server).
func ExampleRun() {
	conn, err := amqp091.Dial("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		log.Fatal(err)
	}
	defer ch.Close()
	// Poison messages go to orders.dead, through the exchange orders.dlx.
	if err := amqp.DeclareQueue(ch, "orders", "orders.dead"); err != nil {
		log.Fatal(err)
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
	engine, err := flux.NewEngine(flux.Config{Workers: 4})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Close()
	t, err := trigger.New(engine, charge, trigger.Options[order]{})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- amqp.Run(ctx, conn, amqp.Config{Queue: "orders"}, t) }()

	// The producer: confirm mode, persistent messages, a message-id each.
	if err := ch.Confirm(false); err != nil {
		log.Fatal(err)
	}
	confirm, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", "orders", false, false, amqp091.Publishing{
		MessageId:    "order-o-1",
		DeliveryMode: amqp091.Persistent,
		ContentType:  "application/json",
		Body:         []byte(`{"id":"o-1","amount":12.5}`),
	})
	if err != nil {
		log.Fatal(err)
	}
	if !confirm.Wait() {
		log.Fatal("the broker did not take the message: publish it again")
	}

	id := <-charges // order-o-1
	res, err := flux.Wait(ctx, engine, charge, id)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, res.Data.Receipt)
	cancel()
	if err := <-done; err != nil { // nil when ctx ended; else reconnect
		log.Fatal(err)
	}
}
