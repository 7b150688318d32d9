package file

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/store"
)

// TestPutIfOneWinnerPerVersion starts N goroutines at once, all writing with the same expected version:
// exactly one must win each round, the others must get ErrConflict, and the winner's value is current.
func TestPutIfOneWinnerPerVersion(t *testing.T) {
	const workers, rounds = 8, 25
	s := newStore(t, Options{})
	ctx := testCtx(t)
	mustPut(t, s, "race", store.Text("start"), store.PutOptions{})
	for round := 1; round <= rounds; round++ {
		start := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var winners []string
		conflicts := 0
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				val := fmt.Sprintf("round-%d-worker-%d", round, w)
				_, err := s.PutIf(ctx, "race", store.Text(val), store.PutOptions{}, strconv.Itoa(round))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					winners = append(winners, val)
				case errors.Is(err, store.ErrConflict):
					conflicts++
				default:
					t.Errorf("round %d: %v", round, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(winners) != 1 || conflicts != workers-1 {
			t.Fatalf("round %d: %d winners, %d conflicts; want 1 and %d", round, len(winners), conflicts, workers-1)
		}
		sec, err := s.Get(ctx, "race")
		if err != nil || string(sec.Value.Bytes()) != winners[0] || sec.Metadata.Version != strconv.Itoa(round+1) {
			t.Fatalf("round %d: current %v %q, %v; the winner wrote %q", round, sec.Value, sec.Metadata.Version, err, winners[0])
		}
	}
}

// TestConcurrentPutsAndDeletes mixes writers, readers and deleters of neighbouring secrets: no operation
// may fail with anything but the expected kinds, and every value read must be one that was written.
func TestConcurrentPutsAndDeletes(t *testing.T) {
	s := newStore(t, Options{})
	ctx := testCtx(t)
	const workers, ops = 6, 40
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < ops; i++ {
				name := fmt.Sprintf("tree/n%d/leaf%d", i%3, (w+i)%2)
				switch (w + i) % 4 {
				case 0, 1:
					if _, err := s.Put(ctx, name, checkedValue(w*1000+i), store.PutOptions{}); err != nil {
						t.Errorf("Put: %v", err)
					}
				case 2:
					if err := s.Delete(ctx, name, store.DeleteOptions{}); err != nil && !errors.Is(err, store.ErrNotFound) {
						t.Errorf("Delete: %v", err)
					}
				case 3:
					sec, err := s.Get(ctx, name)
					if err != nil && !errors.Is(err, store.ErrNotFound) {
						t.Errorf("Get: %v", err)
					} else if err == nil {
						if err := verifyChecked(sec.Value); err != nil {
							t.Error(err)
						}
					}
					for _, err := range s.List(ctx, store.ListOptions{Prefix: "tree/"}) {
						if err != nil {
							t.Errorf("List: %v", err)
						}
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestLockWaitHonoursContext(t *testing.T) {
	s := newStore(t, Options{})
	mustPut(t, s, "held", store.Text("v"), store.PutOptions{})
	root, err := s.open("test", "held")
	if err != nil {
		t.Fatal(err)
	}
	lk, err := lock(testCtx(t), root, secretDir("held"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	before := s.Writes()
	_, err = s.Put(ctx, "held", store.Text("w"), store.PutOptions{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put while the lock is held elsewhere: %v, want the context's deadline", err)
	}
	if s.Writes() != before {
		t.Fatal("a Put that never got the lock wrote files")
	}
}
