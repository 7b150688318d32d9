// Package funchost stands in for the Azure Functions host in front of a custom handler: it starts the
// handler binary with FUNCTIONS_CUSTOMHANDLER_PORT, waits for it to listen, and invokes its functions with
// the host's request document {"Data": {...}, "Metadata": {...}} — as an eventGridTrigger or a
// timerTrigger would — retrying a failed (non-2xx) Event Grid delivery with backoff, as Event Grid does.
package funchost

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/keyferry/keyferry/localtest/proc"
)

// Host is a running custom handler.
type Host struct {
	cmd    *exec.Cmd
	base   string
	client *http.Client
	logs   *buffer
	// Retries is how often a failed delivery is retried (Event Grid retries for 24 hours; tests need few).
	Retries int
	// Backoff is the first retry delay, doubled per retry.
	Backoff time.Duration

	mu        sync.Mutex
	delivered int
	failed    int
}

// Start runs the handler binary and waits until it accepts connections.
func Start(ctx context.Context, binary string, env map[string]string) (*Host, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	h := &Host{base: "http://127.0.0.1:" + strconv.Itoa(port), client: &http.Client{Timeout: 5 * time.Minute},
		logs: &buffer{}, Retries: 3, Backoff: 200 * time.Millisecond}
	cmd := exec.Command(binary)
	cmd.Env = append(os.Environ(), "FUNCTIONS_CUSTOMHANDLER_PORT="+strconv.Itoa(port), "FUNCTIONS_WORKER_RUNTIME=Custom")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = h.logs, h.logs
	proc.Isolate(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", binary, err)
	}
	h.cmd = cmd
	deadline := time.Now().Add(60 * time.Second) // the host's own start-up limit
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			return h, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			h.Stop()
			return nil, fmt.Errorf("the custom handler did not listen within 60 s: %s", h.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Invoke posts one invocation document to a function and returns the status and the response document.
func (h *Host) Invoke(ctx context.Context, function string, data map[string]any) (int, map[string]any, error) {
	doc := map[string]any{"Data": data, "Metadata": map[string]any{"sys": map[string]any{
		"MethodName": function, "UtcNow": time.Now().UTC().Format(time.RFC3339), "RandGuid": "00000000-0000-0000-0000-000000000000"}}}
	b, _ := json.Marshal(doc)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.base+"/"+function, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Azure-Functions-InvocationId", strconv.FormatInt(time.Now().UnixNano(), 36))
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	body, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(body, &out)
	return resp.StatusCode, out, nil
}

// DeliverEventGrid delivers one Event Grid event to an eventGridTrigger function, retrying non-2xx
// answers. It returns the final status.
func (h *Host) DeliverEventGrid(ctx context.Context, function string, ev json.RawMessage) (int, error) {
	wait := h.Backoff
	for attempt := 0; ; attempt++ {
		status, _, err := h.Invoke(ctx, function, map[string]any{"event": ev})
		if err == nil && status/100 == 2 {
			h.mu.Lock()
			h.delivered++
			h.mu.Unlock()
			return status, nil
		}
		if attempt >= h.Retries {
			h.mu.Lock()
			h.failed++
			h.mu.Unlock()
			return status, err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return status, ctx.Err()
		}
		wait *= 2
	}
}

// Timer invokes a timerTrigger function.
func (h *Host) Timer(ctx context.Context, function string) (int, map[string]any, error) {
	now := time.Now().UTC()
	return h.Invoke(ctx, function, map[string]any{"timer": map[string]any{
		"Schedule": map[string]any{"AdjustForDST": true}, "IsPastDue": false,
		"ScheduleStatus": map[string]any{"Last": now.Add(-15 * time.Minute), "Next": now.Add(15 * time.Minute), "LastUpdated": now}}})
}

// Counts returns how many deliveries succeeded and how many gave up.
func (h *Host) Counts() (delivered, failed int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.delivered, h.failed
}

// Logs is everything the handler printed.
func (h *Host) Logs() string { return h.logs.String() }

// PID is the handler process's id.
func (h *Host) PID() int { return h.cmd.Process.Pid }

// Stop kills the handler's process group.
func (h *Host) Stop() {
	if h.cmd != nil && h.cmd.Process != nil {
		_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
		_, _ = h.cmd.Process.Wait()
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
