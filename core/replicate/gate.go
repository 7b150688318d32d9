package replicate

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/keyferry/keyferry/core/store"
)

// gate paces the calls to one store: when the store throttles, every caller of that store waits out its
// Retry-After (1 s when it names none) before the next call, while the other stores carry on. A sweep thus
// runs each store close to its quota — the store's quota bucket refills during the pause — instead of
// letting the tightest store stall all the others.
type gate struct {
	mu    sync.Mutex
	until time.Time
	count int64 // pauses so far
}

func (g *gate) wait(ctx context.Context) error {
	for {
		g.mu.Lock()
		d := time.Until(g.until)
		g.mu.Unlock()
		if d <= 0 {
			return nil
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

func (g *gate) observe(err error) {
	if !errors.Is(err, store.ErrThrottled) {
		return
	}
	d := time.Second
	var se *store.Error
	if errors.As(err, &se) && se.RetryAfter > 0 {
		d = se.RetryAfter
	}
	g.mu.Lock()
	if t := time.Now().Add(d); t.After(g.until) {
		g.until = t
		g.count++
	}
	g.mu.Unlock()
}

// gated runs one call to a store through its gate.
func (e *Engine) gated(ctx context.Context, storeName string, call func() error) error {
	g := e.gates[storeName]
	if g == nil {
		return call()
	}
	if err := g.wait(ctx); err != nil {
		return err
	}
	err := call()
	g.observe(err)
	return err
}
