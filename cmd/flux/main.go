// Command flux runs Flux workflows and looks at their runs.
//
//	flux demo                 run the order-fulfillment example and print the run
//	flux runs list|show ID    read runs from a store
//	flux schedules list       list cron schedules; pause|resume|delete NAME
//	flux migrate              apply storage migrations
//	flux bench                measure throughput and latency
//	flux dev                  serve the web viewer of a trace file or store
//
// Run `flux help` for the full list, and `flux CMD -h` for a command's flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string) error
}

var commands []command

// register adds a subcommand; each lives in its own file and registers
// itself from init.
func register(name, summary string, run func(ctx context.Context, args []string) error) {
	commands = append(commands, command{name, summary, run})
}

func usage() {
	slices.SortFunc(commands, func(a, b command) int { return strings.Compare(a.name, b.name) })
	fmt.Fprintln(os.Stderr, "usage: flux <command> [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", c.name, c.summary)
	}
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "help" || os.Args[1] == "-h" || os.Args[1] == "--help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, c := range commands {
		if c.name == os.Args[1] {
			err := c.run(ctx, os.Args[2:])
			if errors.Is(err, flag.ErrHelp) {
				return
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "flux %s: %v\n", c.name, err)
				os.Exit(1)
			}
			return
		}
	}
	fmt.Fprintf(os.Stderr, "flux: unknown command %q\n\n", os.Args[1])
	usage()
	os.Exit(2)
}
