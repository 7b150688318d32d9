// Package deploy runs keyferry's three function binaries on the local cloud, subscribed to its change
// events the way the infrastructure code subscribes them in the real clouds: EventBridge events → the Lambda
// bootstrap under a local Runtime API; Key Vault's Event Grid events → the Azure custom handler under a
// Functions host stand-in; Secret Manager notifications → the Pub/Sub emulator → a push subscription → the
// GCP function served by the Functions Framework. The end-to-end tests and the demo use it.
//
// By default every function holds the local cloud's ambient credentials for every cloud (cloud.Env); with
// Options.Federation on a federated cloud each holds its own cloud's identity only (cloud.FunctionEnv) and
// reaches the other clouds and Vault through workload identity federation.
package deploy

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/keyferry/keyferry/core/dispatch"
	"github.com/keyferry/keyferry/localtest/cloud"
	"github.com/keyferry/keyferry/localtest/funchost"
	"github.com/keyferry/keyferry/localtest/lambdart"
	"github.com/keyferry/keyferry/localtest/logbuf"
	"github.com/keyferry/keyferry/localtest/proc"
)

// Functions are the three running functions.
type Functions struct {
	c       *cloud.Cloud
	Lambda  *lambdart.Runtime
	Azure   *funchost.Host
	gcp     *exec.Cmd
	gcpOut  *logbuf.Buffer
	gcpPort int
	dir     string

	mu        sync.Mutex
	pushes    int
	awsEvents [][]byte
	kvEvents  [][]byte
	inflight  atomic.Int64 // Event Grid deliveries in progress
	ctx       context.Context
	cancel    context.CancelFunc
}

// Packages are the function binaries' Go packages.
var Packages = [3]string{"github.com/keyferry/keyferry/functions/aws", "github.com/keyferry/keyferry/functions/azure",
	"github.com/keyferry/keyferry/functions/gcp/cmd/function"}

// Options configure StartWith.
type Options struct {
	// Federation gives each function only its own cloud's identity (cloud.FunctionEnv): the AWS function
	// the Lambda's execution role, the Azure function the managed identity, the GCP function the metadata
	// server, each with KEYFERRY_HOME and the token services' endpoints, so that every other store is
	// reached through workload identity federation. The cloud must run with cloud.Options.Federation.
	// Without it every function gets the local cloud's ambient credentials for every cloud (cloud.Env).
	Federation bool
}

// Start builds the functions (go build, cached), starts them with configYAML as their keyferry.yaml and
// the local cloud's environment, and subscribes them to the cloud's events. The cloud must run the AWS,
// Azure, GCP and Pub/Sub parts.
func Start(ctx context.Context, c *cloud.Cloud, configYAML string) (*Functions, error) {
	return StartWith(ctx, c, configYAML, Options{})
}

// StartWith is Start with options.
func StartWith(ctx context.Context, c *cloud.Cloud, configYAML string, opts Options) (_ *Functions, err error) {
	if c.Trail == nil || c.KeyVault == nil || c.Notifier == nil {
		return nil, errors.New("deploy: the local cloud needs its aws, azure, gcp and pubsub parts")
	}
	if opts.Federation && c.Federation == nil {
		return nil, errors.New("deploy: Options.Federation needs a local cloud started with cloud.Options.Federation")
	}
	dir, err := os.MkdirTemp("", "keyferry-functions-")
	if err != nil {
		return nil, err
	}
	f := &Functions{c: c, dir: dir, gcpOut: &logbuf.Buffer{}}
	f.ctx, f.cancel = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			f.Stop()
		}
	}()
	var bins [3]string
	var berr [3]error
	var wg sync.WaitGroup
	for i, pkg := range Packages {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bins[i], berr[i] = lambdart.Build(ctx, pkg, dir)
		}()
	}
	wg.Wait()
	if err := errors.Join(berr[:]...); err != nil {
		return nil, err
	}
	var envs [3]map[string]string
	for i, home := range []string{cloud.AWS, cloud.Azure, cloud.GCP} {
		if opts.Federation {
			if envs[i], err = c.FunctionEnv(home); err != nil {
				return nil, err
			}
		} else {
			envs[i] = c.Env()
		}
		envs[i][dispatch.EnvConfigYAML] = configYAML
	}

	if f.Lambda, err = lambdart.Start(lambdart.Options{Binary: bins[0], Env: envs[0]}); err != nil {
		return nil, fmt.Errorf("deploy: the AWS function: %w", err)
	}
	if f.Azure, err = funchost.Start(ctx, bins[1], envs[1]); err != nil {
		return nil, fmt.Errorf("deploy: the Azure function: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	f.gcpPort = port
	f.gcp = exec.Command(bins[2])
	// The host's environment with the function's own on top (a variable set empty there is unset here).
	f.gcp.Env = append(os.Environ(), "PORT="+strconv.Itoa(port))
	for k, v := range envs[2] {
		f.gcp.Env = append(f.gcp.Env, k+"="+v)
	}
	f.gcp.Stdout, f.gcp.Stderr = f.gcpOut, f.gcpOut
	proc.Isolate(f.gcp)
	if err := f.gcp.Start(); err != nil {
		f.gcp = nil
		return nil, fmt.Errorf("deploy: the GCP function: %w", err)
	}
	if err := waitListening(ctx, port); err != nil {
		return nil, fmt.Errorf("deploy: the GCP function: %w\n%s", err, f.gcpOut.String())
	}

	c.OnAWSEvent(func(ev []byte) {
		f.mu.Lock()
		f.awsEvents = append(f.awsEvents, ev)
		f.mu.Unlock()
		f.Lambda.Enqueue(ev)
	})
	c.OnAzureEvent(func(ev []byte) {
		f.mu.Lock()
		f.kvEvents = append(f.kvEvents, ev)
		f.mu.Unlock()
		f.inflight.Add(1)
		defer f.inflight.Add(-1)
		_, _ = f.Azure.DeliverEventGrid(f.ctx, "KeyVaultEvents", ev)
	})
	if err := c.Notifier.PushTo(ctx, cloud.SecretTopic, "projects/"+cloud.Project+"/subscriptions/keyferry-function",
		"http://127.0.0.1:"+strconv.Itoa(port)); err != nil {
		return nil, err
	}
	return f, nil
}

// Stop unsubscribes and stops the functions.
func (f *Functions) Stop() {
	f.c.OnAWSEvent(nil)
	f.c.OnAzureEvent(nil)
	f.cancel()
	if f.Lambda != nil {
		f.Lambda.Stop()
	}
	if f.Azure != nil {
		f.Azure.Stop()
	}
	if f.gcp != nil {
		_ = syscall.Kill(-f.gcp.Process.Pid, syscall.SIGKILL)
		_, _ = f.gcp.Process.Wait()
	}
	_ = os.RemoveAll(f.dir)
}

// Events returns copies of the AWS and Azure events delivered so far.
func (f *Functions) Events() (aws, azure [][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.awsEvents...), append([][]byte(nil), f.kvEvents...)
}

// Redeliver delivers events again (a duplicate delivery), in the order given.
func (f *Functions) Redeliver(ctx context.Context, aws, azure [][]byte) error {
	for _, ev := range aws {
		f.Lambda.Enqueue(ev)
	}
	for _, ev := range azure {
		if st, err := f.Azure.DeliverEventGrid(ctx, "KeyVaultEvents", ev); err != nil || st/100 != 2 {
			return fmt.Errorf("redelivering an Event Grid event: %d %v", st, err)
		}
	}
	return nil
}

// PushToGCP delivers one Pub/Sub message (data, attributes) to the GCP function as the push subscription
// does, synchronously, and returns the function's HTTP status (2xx: acknowledged). A message {"job":
// "sweep"} is Cloud Scheduler's sweep.
func (f *Functions) PushToGCP(ctx context.Context, data []byte, attributes map[string]string) (int, error) {
	f.mu.Lock()
	f.pushes++
	id := strconv.Itoa(f.pushes)
	f.mu.Unlock()
	body, err := json.Marshal(map[string]any{
		"message": map[string]any{"data": base64.StdEncoding.EncodeToString(data), "attributes": attributes,
			"messageId": "local-push-" + id, "publishTime": time.Now().UTC().Format(time.RFC3339Nano)},
		"subscription": "projects/" + cloud.Project + "/subscriptions/keyferry-function",
	})
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1:"+strconv.Itoa(f.gcpPort), bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("pushing to the GCP function: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// Logs is every function's output.
func (f *Functions) Logs() string {
	return "--- aws function ---\n" + f.Lambda.Logs() + "\n--- azure function ---\n" + f.Azure.Logs() +
		"\n--- gcp function ---\n" + f.gcpOut.String()
}

// Writes counts the calls that changed something, per store of the local cloud's configuration, from the
// fault layers in front of each store.
func Writes(c *cloud.Cloud) map[string]int64 {
	out := map[string]int64{}
	for k, n := range WriteCalls(c) {
		out[k[:strings.Index(k, " ")]] += n
	}
	return out
}

// WriteCalls counts the calls that changed something per store and API ("gcp secretmanager:UpdateSecret").
func WriteCalls(c *cloud.Cloud) map[string]int64 {
	out := map[string]int64{}
	for name, l := range c.Faults() {
		if name == "aws-ssm" { // shares the AWS layer
			continue
		}
		for api, n := range l.Calls() {
			if IsWrite(api) {
				out[name+" "+api] += n
			}
		}
	}
	return out
}

// IsWrite tells whether a fault-layer API name ("secretsmanager:PutSecretValue", "vault:kv-write") changes
// something.
func IsWrite(api string) bool {
	op := api[strings.Index(api, ":")+1:]
	for _, p := range []string{"Get", "List", "Describe", "Access", "BatchGet", "sys", "auth"} {
		if strings.HasPrefix(op, p) {
			return false
		}
	}
	return !strings.HasSuffix(op, "-read") && !strings.HasSuffix(op, "-list")
}

// Settle waits until every delivered event has been handled and no store has been written for 3 s, and
// returns the write counts then.
func (f *Functions) Settle(ctx context.Context) (map[string]int64, error) {
	last, quiet := Writes(f.c), 0
	for quiet < 6 {
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("the functions never went quiet: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
		if err := f.Lambda.Drain(ctx); err != nil {
			return last, err
		}
		now := Writes(f.c)
		if fmt.Sprint(now) == fmt.Sprint(last) && f.inflight.Load() == 0 {
			quiet++
		} else {
			quiet, last = 0, now
		}
	}
	return last, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitListening(ctx context.Context, port int) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("not listening after 60 s")
}
