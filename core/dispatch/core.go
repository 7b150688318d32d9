package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/keyferry/keyferry/core/audit"
	"github.com/keyferry/keyferry/core/certmgr"
	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/event"
	"github.com/keyferry/keyferry/core/notify"
	"github.com/keyferry/keyferry/core/replicate"
	"github.com/keyferry/keyferry/core/rotate"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/stores"
)

// Options configure New.
type Options struct {
	Logger   *slog.Logger           // nil: JSON lines on stderr
	Audit    audit.Sink             // nil: JSON lines through the logger's writer (stderr)
	Notifier replicate.Notifier     // alerts; nil: the configuration's notify: routes (core/notify)
	Stores   map[string]store.Store // nil: opened from the configuration (no call is made until used)
	// Hooks are rotation test hooks by name (policies name them in `test:`).
	Hooks map[string]func(ctx context.Context, secretName string, value store.Value) error
}

// New returns the Core for a loaded configuration. It makes no call to any store.
func New(ctx context.Context, cfg *config.Config, opts Options) (Core, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if opts.Audit == nil {
		opts.Audit = audit.NewJSONSink(os.Stderr)
	}
	sts := opts.Stores
	if sts == nil {
		var err error
		if sts, err = stores.OpenAll(ctx, cfg); err != nil {
			return nil, err
		}
	}
	if opts.Notifier == nil {
		n, err := notify.New(cfg.Notify, opts.Logger)
		if err != nil {
			return nil, err
		}
		opts.Notifier = n
	}
	eng, err := replicate.New(cfg.Replicate, sts, replicate.Options{Logger: opts.Logger, Audit: opts.Audit, Notifier: opts.Notifier, Hold: rotate.Hold})
	if err != nil {
		return nil, fmt.Errorf("replication rules: %w", err)
	}
	c := &core{cfg: cfg, engine: eng, stores: sts, opts: opts}
	if len(cfg.Rotate) > 0 {
		if c.rotator, err = rotate.New(cfg.Rotate, sts, eng, rotate.Options{Logger: opts.Logger, Audit: opts.Audit, Hooks: opts.Hooks}); err != nil {
			return nil, fmt.Errorf("rotation policies: %w", err)
		}
	}
	return c, nil
}

type core struct {
	cfg     *config.Config
	engine  *replicate.Engine
	rotator *rotate.Engine // nil without rotate: policies
	stores  map[string]store.Store
	opts    Options

	certOnce sync.Once // the certificate manager is built on the first "renew" job
	certs    *certmgr.Manager
	certsErr error
}

// certManager builds the certificate manager on first use (it makes no call either).
func (c *core) certManager() (*certmgr.Manager, error) {
	c.certOnce.Do(func() {
		c.certs, c.certsErr = certmgr.New(c.cfg, c.stores, certmgr.Options{Logger: c.opts.Logger, Audit: c.opts.Audit, Notifier: c.opts.Notifier})
	})
	return c.certs, c.certsErr
}

// RotationStep runs one step of Secrets Manager's rotation protocol (the Lambda is the secret's rotation
// function).
func (c *core) RotationStep(ctx context.Context, step event.RotationStep) error {
	if c.rotator == nil {
		return errors.New("Secrets Manager invoked a rotation step, but keyferry.yaml has no rotate: policy")
	}
	return classify(c.rotator.Step(ctx, step.Step, step.SecretID, step.ClientRequestToken))
}

// rotateDue rotates what is due; it is part of every scheduled sweep, so the timers in every cloud drive
// rotation too (due-ness comes from the secrets' metadata, so they agree).
func (c *core) rotateDue(ctx context.Context) (string, error) {
	if c.rotator == nil {
		return "", nil
	}
	res, err := c.rotator.RotateDue(ctx)
	n := 0
	for _, r := range res {
		if r.Rotated {
			n++
		}
	}
	return fmt.Sprintf("; %d rotated", n), err
}

func (c *core) Change(ctx context.Context, ch event.Change) (Report, error) {
	if ch.Kind == event.KindRotate {
		return c.rotateOne(ctx, ch)
	}
	names := Resolve(c.cfg, ch)
	if len(names) == 0 {
		return Report{Summary: ch.String() + ": no configured store matches; acknowledged"}, nil
	}
	var rep Report
	var errs []error
	var parts []string
	for _, st := range names {
		res, err := c.engine.Sync(ctx, st, ch.Name)
		rep.add(res)
		parts = append(parts, fmt.Sprintf("%s/%s: %s", st, ch.Name, res.Summary()))
		if err != nil {
			errs = append(errs, err)
		}
	}
	rep.Summary = strings.Join(parts, "; ")
	return rep, classify(errors.Join(errs...))
}

func (c *core) Schedule(ctx context.Context, s event.Schedule) (Report, error) {
	var opts replicate.SweepOptions
	switch s.Job {
	case "", "sweep":
		s.Job = "sweep"
	case "deep-sweep":
		opts.Deep = true
	case "renew":
		if c.cfg.Certificates == nil {
			return Report{Summary: "renew: no certificates are configured; acknowledged"}, nil
		}
		m, err := c.certManager()
		if err != nil {
			return Report{Summary: "renew: " + err.Error()}, err
		}
		results, err := m.Renew(ctx)
		var rep Report
		var parts []string
		for _, r := range results {
			rep.Written += r.Count(certmgr.ActWritten)
			rep.Unchanged += r.Count(certmgr.ActNotDue)
			rep.Skipped += r.Count(certmgr.ActNotManaged)
			rep.Refused += r.Count(certmgr.ActRefused)
			rep.Failed += r.Count(certmgr.ActFailed)
			if r.Issued {
				parts = append(parts, r.Spec+" renewed")
			}
		}
		rep.Summary = fmt.Sprintf("renew: %d certificates, %d written, %d not due, %d failed", len(results), rep.Written, rep.Unchanged, rep.Failed+rep.Refused)
		if len(parts) > 0 {
			rep.Summary += " (" + strings.Join(parts, ", ") + ")"
		}
		if errors.Is(err, certmgr.ErrTransient) {
			err = fmt.Errorf("%w: %w", ErrRetryable, err)
		}
		return rep, err
	default:
		return Report{Summary: "unknown job " + s.Job}, fmt.Errorf("unknown scheduled job %q: the jobs are sweep, deep-sweep and renew", s.Job)
	}
	res, err := c.engine.Sweep(ctx, opts)
	var rep Report
	rep.add(res)
	rot, rerr := c.rotateDue(ctx)
	rep.Summary = fmt.Sprintf("%s: %s (%d skipped as already replicated)%s", s.Job, res.Summary(), res.Skipped, rot)
	return rep, classify(errors.Join(err, rerr))
}

// rotateOne handles a cloud's request to rotate a secret (GCP SECRET_ROTATE, Key Vault SecretNearExpiry).
func (c *core) rotateOne(ctx context.Context, ch event.Change) (Report, error) {
	if c.rotator == nil {
		return Report{Summary: ch.String() + ": no rotation is configured; acknowledged"}, nil
	}
	for _, st := range Resolve(c.cfg, ch) {
		if pol, ok := c.rotator.PolicyFor(st, ch.Name); ok {
			res, err := c.rotator.RotateRequested(ctx, pol, ch.Name, ch.Time)
			sum := fmt.Sprintf("%s: policy %s: rotated=%v", ch.String(), pol, res.Rotated)
			if res.Skipped != "" {
				sum += " (" + res.Skipped + ")"
			}
			if res.Recovered != "" {
				sum += " (" + res.Recovered + " an interrupted rotation)"
			}
			return Report{Summary: sum}, classify(err)
		}
	}
	return Report{Summary: ch.String() + ": no rotation policy covers it; acknowledged"}, nil
}

// classify marks an error the platform should redeliver: throttling and unreachable stores.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, replicate.ErrRetryable) || errors.Is(err, store.ErrThrottled) || errors.Is(err, store.ErrUnavailable) ||
		errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrRetryable, err)
	}
	return err
}

func (r *Report) add(res *replicate.Result) {
	if res == nil {
		return
	}
	r.Written += res.Counts[replicate.ActCreate] + res.Counts[replicate.ActUpdate] + res.Counts[replicate.ActDelete]
	r.Unchanged += res.Counts[replicate.ActUnchanged]
	r.Skipped += res.Counts[replicate.ActSkip] + res.Counts[replicate.ActKeep]
	r.Refused += res.Counts[replicate.ActRefuse]
	r.Conflicts += res.Counts[replicate.ActConflict]
	r.Failed += len(res.Failures)
}
