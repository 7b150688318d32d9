package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

type credFailure struct{}

func (credFailure) Error() string          { return "azure → aws: refused" }
func (credFailure) CredentialHint() string { return "fix the trust" }

// TestAnnotateCredentialFailure: however an adapter classified the service's answer, an error caused by
// a failed credential exchange is a permission error whose hint is the exchange's own.
func TestAnnotateCredentialFailure(t *testing.T) {
	wrapped := fmt.Errorf("operation error: get credentials: %w", credFailure{})
	for _, in := range []error{
		&Error{Kind: ErrUnavailable, Hint: "grant the identity secretsmanager:*", Err: wrapped},
		wrapped,
	} {
		err := Annotate(in, "aws", "get", "db")
		var se *Error
		if !errors.As(err, &se) || !errors.Is(err, ErrPermissionDenied) || se.Hint != "fix the trust" || se.Store != "aws" {
			t.Errorf("Annotate(%v) = %v", in, err)
		}
		if se.Detail != "no credentials: azure → aws: refused" {
			t.Errorf("detail %q does not carry the failure's own message", se.Detail)
		}
		if strings.Count(err.Error(), "grant") != 0 {
			t.Errorf("the permission hint survived: %v", err)
		}
	}
	if err := Annotate(&Error{Kind: ErrNotFound}, "aws", "get", "db"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a plain error changed kind: %v", err)
	}
}
