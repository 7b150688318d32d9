// Package lambdart is a local AWS Lambda Runtime API: it runs a real `lambda.Start` binary as a child
// process (the way provided.al2023 runs a bootstrap) and feeds it events one at a time, so tests exercise
// the exact binary that ships. Asynchronous invocations are retried on error twice, as Lambda does for
// EventBridge deliveries.
package lambdart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keyferry/keyferry/localtest/logbuf"
	"github.com/keyferry/keyferry/localtest/proc"
)

// Outcome is the end of one invocation.
type Outcome struct {
	Payload  []byte // the function's response, or its error document
	Err      bool   // the function returned an error
	Attempts int
}

type invocation struct {
	id      string
	payload []byte
	attempt int
	async   bool
	done    chan Outcome
}

// Runtime is a running function.
type Runtime struct {
	srv   *http.Server
	addr  string
	cmd   *exec.Cmd
	logs  *logbuf.Buffer
	queue chan *invocation

	mu       sync.Mutex
	inflight map[string]*invocation
	seq      int
	results  []Outcome
	pending  sync.WaitGroup
	retries  int
}

// Options configure Start.
type Options struct {
	Binary  string            // the bootstrap binary
	Env     map[string]string // extra environment
	Retries int               // async retries after an error; -1: none; 0: 2 (Lambda's default)
	Stdout  io.Writer         // the function's output as well as Logs(); nil: only Logs()
}

// Start serves the Runtime API on 127.0.0.1 and starts the binary against it.
func Start(opts Options) (*Runtime, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Runtime{addr: ln.Addr().String(), logs: &logbuf.Buffer{}, queue: make(chan *invocation, 1024),
		inflight: map[string]*invocation{}, retries: opts.Retries}
	if r.retries == 0 {
		r.retries = 2
	} else if r.retries < 0 {
		r.retries = 0
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", r.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", func(w http.ResponseWriter, req *http.Request) { r.finish(w, req, false) })
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", func(w http.ResponseWriter, req *http.Request) { r.finish(w, req, true) })
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.logs.Write([]byte("init error: " + string(b) + "\n"))
		w.WriteHeader(http.StatusAccepted)
	})
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()

	cmd := exec.Command(opts.Binary)
	cmd.Env = append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+r.addr, "AWS_LAMBDA_FUNCTION_NAME=keyferry",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256", "AWS_LAMBDA_FUNCTION_VERSION=$LATEST", "_HANDLER=bootstrap")
	for k, v := range opts.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out io.Writer = r.logs
	if opts.Stdout != nil {
		out = io.MultiWriter(r.logs, opts.Stdout)
	}
	cmd.Stdout, cmd.Stderr = out, out
	proc.Isolate(cmd)
	if err := cmd.Start(); err != nil {
		_ = r.srv.Close()
		return nil, fmt.Errorf("starting %s: %w", opts.Binary, err)
	}
	r.cmd = cmd
	return r, nil
}

func (r *Runtime) next(w http.ResponseWriter, req *http.Request) {
	var inv *invocation
	select {
	case inv = <-r.queue:
	case <-req.Context().Done():
		return
	}
	r.mu.Lock()
	r.inflight[inv.id] = inv
	r.mu.Unlock()
	h := w.Header()
	h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(5*time.Minute).UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:keyferry")
	h.Set("Content-Type", "application/json")
	_, _ = w.Write(inv.payload)
}

func (r *Runtime) finish(w http.ResponseWriter, req *http.Request, failed bool) {
	id := req.PathValue("id")
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	inv := r.inflight[id]
	delete(r.inflight, id)
	r.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
	if inv == nil {
		return
	}
	if failed && inv.async && inv.attempt < r.retries {
		inv.attempt++
		r.enqueue(inv)
		return
	}
	o := Outcome{Payload: body, Err: failed, Attempts: inv.attempt + 1}
	r.mu.Lock()
	r.results = append(r.results, o)
	r.mu.Unlock()
	if inv.done != nil {
		inv.done <- o
	}
	if inv.async {
		r.pending.Done()
	}
}

func (r *Runtime) enqueue(inv *invocation) {
	r.mu.Lock()
	r.seq++
	inv.id = fmt.Sprintf("req-%d", r.seq)
	r.mu.Unlock()
	r.queue <- inv
}

// Invoke runs one synchronous invocation and returns its outcome.
func (r *Runtime) Invoke(ctx context.Context, payload []byte) (Outcome, error) {
	inv := &invocation{payload: payload, done: make(chan Outcome, 1)}
	r.enqueue(inv)
	select {
	case o := <-inv.done:
		return o, nil
	case <-ctx.Done():
		return Outcome{}, fmt.Errorf("invocation did not finish: %w (function output: %s)", ctx.Err(), tail(r.Logs(), 2000))
	}
}

// Enqueue delivers an event asynchronously (as EventBridge does), with retries on error.
func (r *Runtime) Enqueue(payload []byte) {
	r.pending.Add(1)
	r.enqueue(&invocation{payload: bytes.Clone(payload), async: true})
}

// Drain waits until every asynchronous invocation has finished (or ctx ends).
func (r *Runtime) Drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() { r.pending.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return errors.New("asynchronous invocations still running: " + ctx.Err().Error())
	}
}

// Outcomes returns every finished invocation so far.
func (r *Runtime) Outcomes() []Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Outcome(nil), r.results...)
}

// Logs is everything the function printed.
func (r *Runtime) Logs() string { return r.logs.String() }

// PID is the function process's id.
func (r *Runtime) PID() int { return r.cmd.Process.Pid }

// Stop kills the function's process group and stops the API.
func (r *Runtime) Stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		_, _ = r.cmd.Process.Wait()
	}
	_ = r.srv.Close()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// Build compiles a Go main package into dir and returns the binary's path (for tests).
func Build(ctx context.Context, pkg, dir string) (string, error) {
	out := dir + "/bootstrap-" + strings.NewReplacer("/", "_", ".", "_").Replace(pkg)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}
