package tracefile_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/tracefile"
)

func Example() {
	dir, err := os.MkdirTemp("", "flux-trace")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, ".flux", "trace.ndjson")

	sink, err := tracefile.New(path, tracefile.Reset(true))
	if err != nil {
		log.Fatal(err)
	}
	engine, err := flux.NewEngine(flux.Config{Trace: sink, Logger: slogDiscard()})
	if err != nil {
		log.Fatal(err)
	}
	greet := flux.New[string, string]("greet").
		Step("hello", func(c *flux.Ctx[string, string]) error {
			*c.Data = "hello, " + c.Input
			return nil
		})
	if _, err := flux.Execute(context.Background(), engine, greet, "world"); err != nil {
		log.Fatal(err)
	}
	engine.Close()
	if err := sink.Close(); err != nil { // flushes
		log.Fatal(err)
	}

	f, err := os.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	r := tracefile.NewReader(f)
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		var le *tracefile.LineError
		if errors.As(err, &le) && errors.Is(err, flux.ErrCorrupt) {
			fmt.Println("skipping:", le) // the line is lost; read on
			continue
		} else if err != nil && !errors.As(err, &le) {
			log.Fatal(err) // an I/O error
		}
		fmt.Printf("%d %s %q\n", r.Line(), rec.Type, rec.StepName)
	}
	// Output:
	// 1 workflow:start ""
	// 2 step:start "hello"
	// 3 step:complete "hello"
	// 4 workflow:complete ""
}

func ExampleParseLine() {
	for _, line := range []string{
		`{"type":"step:complete","timestamp":1795610935531,"workflowId":"21fb","workflowName":"event-routing","stepName":"classify","stepIndex":0,"commit":false,"retries":0,"duration":1,"status":"completed"}`,
		`{"type":"step:paused","workflowId":"21fb"}`,
		`{"type":"step:start","workflowId":"21fb"`,
	} {
		rec, err := tracefile.ParseLine([]byte(line))
		switch {
		case errors.Is(err, flux.ErrCorrupt):
			fmt.Println("lost:", err)
		case err != nil:
			fmt.Printf("warning: %v; record %s kept\n", err, rec.Type)
		default:
			fmt.Println(rec.Type, rec.StepName, *rec.StepIndex, *rec.Duration)
		}
	}
	// Output:
	// step:complete classify 0 1
	// warning: tracefile: unknown event type "step:paused": the record is kept as it is; record step:paused kept
	// lost: flux: corrupt record: invalid JSON at byte 40: unexpected end of line: want ',' or '}'
}
