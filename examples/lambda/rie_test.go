//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/storeurl"
)

// TestRuntimeInterfaceEmulator builds the example, runs it under the Lambda
// runtime interface emulator (go tool aws-lambda-rie) as Lambda would, and
// invokes it over the emulator's HTTP API: twice with one order, which
// must answer the same run, then checks the run in the SQLite file the
// function wrote.
func TestRuntimeInterfaceEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: not building and running the example under the emulator")
	}
	t.Parallel()
	dir := t.TempDir()
	goBin := goCommand(t)

	bootstrap := filepath.Join(dir, "bootstrap")
	if out, err := exec.CommandContext(t.Context(), goBin, "build", "-o", bootstrap, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build of the example: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(t.Context(), goBin, "tool", "-n", "aws-lambda-rie").Output()
	if err != nil {
		t.Skipf("the emulator cannot be built here (go tool -n aws-lambda-rie: %v); skipping the end-to-end test", err)
	}
	rie := strings.TrimSpace(string(out))

	api, invokeAddr := freeAddr(t), freeAddr(t)
	db := filepath.Join(dir, "flux.db")
	var logs bytes.Buffer
	cmd := exec.Command(rie,
		"--runtime-interface-emulator-address", invokeAddr,
		"--runtime-api-address", api,
		bootstrap)
	cmd.Env = append(os.Environ(), "FLUX_STORAGE_URL=sqlite:"+db, "LOG_LEVEL=info")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Skipf("the emulator cannot run here: %v", err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		// The emulator starts the function in a process group of its own,
		// and its exit does not end the function: kill the function by its
		// process ID first, then the emulator's group.
		fns := children(cmd.Process.Pid)
		for _, pid := range fns {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		for _, pid := range fns {
			if !waitGone(pid, 10*time.Second) {
				t.Errorf("the function's process %d outlived SIGKILL", pid)
			}
		}
	}
	t.Cleanup(stop)

	if err := waitListening(invokeAddr, 30*time.Second); err != nil {
		stop()
		t.Fatalf("the emulator did not listen on %s: %v\n%s", invokeAddr, err, logs.String())
	}

	url := "http://" + invokeAddr + "/2015-03-31/functions/function/invocations"
	const want = `{"status":"completed","id":"lambda-flow:e2e-1"}`
	for i := range 2 {
		status, body, err := post(t.Context(), url, `{"orderId":"e2e-1"}`)
		if err != nil || status != http.StatusOK || body != want {
			stop()
			t.Fatalf("invocation %d: %d %s, %v; want 200 %s\nemulator and function output:\n%s", i+1, status, body, err, want, logs.String())
		}
	}
	status, body, err := post(t.Context(), url, `{}`)
	if err != nil || status != http.StatusOK || !strings.Contains(body, `"errorMessage"`) || !strings.Contains(body, "orderId is empty") {
		// The emulator answers a function error with 200 and Lambda's error
		// document.
		stop()
		t.Fatalf("invocation without orderId: %d %s, %v; want Lambda's error naming orderId\n%s", status, body, err, logs.String())
	}
	if len(children(cmd.Process.Pid)) == 0 {
		t.Errorf("found no function process under the emulator (pid %d)", cmd.Process.Pid)
	}
	stop()

	if !strings.Contains(logs.String(), `"msg":"order ready"`) {
		t.Errorf("the function did not log the notification:\n%s", logs.String())
	}
	if n := strings.Count(logs.String(), `"msg":"order ready"`); n != 1 {
		t.Errorf("notify logged %d times, want 1:\n%s", n, logs.String())
	}
	s, err := storeurl.Open(t.Context(), "sqlite:"+db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	run, err := s.Get(t.Context(), "lambda-flow:e2e-1")
	if err != nil {
		t.Fatalf("the run in the function's database: %v", err)
	}
	if run.Status != flux.StatusCompleted || len(run.Steps) != 2 || len(run.Steps[1].Attempts) != 1 {
		t.Errorf("stored run: %s with %d steps, want completed with notify attempted once: %+v", run.Status, len(run.Steps), run.Steps)
	}
}

// children returns the IDs of the processes whose parent is ppid.
func children(ppid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var pids []int
	for _, f := range stats {
		if pid, parent, _, ok := readStat(f); ok && parent == ppid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// readStat reads a /proc/PID/stat file: the process's ID, its parent's and
// its state.
func readStat(file string) (pid, ppid int, state string, ok bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, 0, "", false
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	head, tail, found := strings.Cut(string(b), " (")
	i := strings.LastIndex(tail, ") ")
	if !found || i < 0 {
		return 0, 0, "", false
	}
	if _, err := fmt.Sscan(head, &pid); err != nil {
		return 0, 0, "", false
	}
	if _, err := fmt.Sscan(tail[i+2:], &state, &ppid); err != nil {
		return 0, 0, "", false
	}
	return pid, ppid, state, true
}

// waitGone waits until process pid has exited (or is a zombie, which
// whoever inherited it reaps).
func waitGone(pid int, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for {
		_, _, state, ok := readStat(fmt.Sprintf("/proc/%d/stat", pid))
		if !ok || state == "Z" || state == "X" {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond) // polling /proc, not waiting for work
	}
}

// goCommand returns the go command that runs the tests.
func goCommand(t *testing.T) string {
	t.Helper()
	goBin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(goBin); err == nil {
		return goBin
	}
	p, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build the example with: %v", err)
	}
	return p
}

// freeAddr returns a local address no one listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitListening waits until something accepts connections at addr.
func waitListening(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond) // polling a port, not waiting for work
	}
}

// post sends body to url and returns the status and the response body.
func post(ctx context.Context, url, body string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, "", fmt.Errorf("reading the body: %w", err)
	}
	return resp.StatusCode, string(b), nil
}
