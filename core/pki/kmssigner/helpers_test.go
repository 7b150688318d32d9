package kmssigner

import (
	"context"
	"sync"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go/middleware"

	"github.com/keyferry/keyferry/localtest/moto"
)

// recorder captures every KMS call a client makes (once per call, before retries).
type recorder struct {
	mu    sync.Mutex
	calls map[string]int
	signs []*kms.SignInput
}

func (r *recorder) count(op string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[op]
}

func (r *recorder) lastSign() *kms.SignInput {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.signs) == 0 {
		return nil
	}
	return r.signs[len(r.signs)-1]
}

// newClient returns a KMS client for a local endpoint (moto or the fake) with static test credentials,
// recording its calls.
func newClient(endpoint string) (*kms.Client, *recorder) {
	rec := &recorder{calls: map[string]int{}}
	c := kms.NewFromConfig(moto.Config(endpoint), func(o *kms.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Initialize.Add(middleware.InitializeMiddlewareFunc("keyferryRecord",
				func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
					rec.mu.Lock()
					op := awsmiddleware.GetOperationName(ctx)
					rec.calls[op]++
					if si, ok := in.Parameters.(*kms.SignInput); ok {
						cp := *si
						rec.signs = append(rec.signs, &cp)
					}
					rec.mu.Unlock()
					return next.HandleInitialize(ctx, in)
				}), middleware.Before)
		})
	})
	return c, rec
}
