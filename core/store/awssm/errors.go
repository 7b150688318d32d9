package awssm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/keyferry/keyferry/core/store"
)

// Hints shared by the errors below.
const (
	hintSoftDeleted = "restore it (Recover) to use it again, or force-delete it (Purge, or Delete with Force) to reuse the name"
	hintDenied      = "grant the identity keyferry runs as the secretsmanager:* (and kms:*) permissions this operation needs"
)

// deniedCodes are the error codes of refused credentials or missing permissions.
var deniedCodes = map[string]bool{
	"AccessDenied": true, "AccessDeniedException": true, "UnrecognizedClientException": true,
	"InvalidClientTokenId": true, "InvalidSignatureException": true, "SignatureDoesNotMatch": true,
	"ExpiredToken": true, "ExpiredTokenException": true, "MissingAuthenticationToken": true,
	"IncompleteSignature": true, "UnauthorizedOperation": true, "NotAuthorized": true,
}

// mapError turns an SDK error into a *store.Error of the right kind (without store, op and name, which
// the caller adds with store.Annotate). It never copies request parameters, so no value can leak.
func mapError(err error) *store.Error {
	if err == nil {
		return nil
	}
	e := &store.Error{Kind: store.ErrUnavailable, Err: err}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code, msg := ae.ErrorCode(), ae.ErrorMessage()
		status := httpStatus(err)
		_, throttle := retry.DefaultThrottleErrorCodes[code]
		switch {
		case code == "ResourceNotFoundException":
			e.Kind = store.ErrNotFound
		case code == "ResourceExistsException":
			e.Kind = store.ErrAlreadyExists
		case code == "InvalidRequestException" && mentionsDeletion(msg):
			e.Kind, e.Detail, e.Hint = store.ErrSoftDeleted, "the secret is scheduled for deletion", hintSoftDeleted
		case code == "LimitExceededException":
			e.Kind = store.ErrThrottled
			e.Detail = "a Secrets Manager quota was exceeded (LimitExceededException); it is a hard quota " +
				"(e.g. versions of one secret written within 24 hours, or secrets per account), so it was not retried"
			e.Hint = "write this secret less often (keep to one new version per 10 minutes), or raise the account quota"
		case throttle:
			e.Kind, e.Detail = store.ErrThrottled, "Secrets Manager throttled the request ("+code+") and retries were exhausted"
			e.RetryAfter, _ = retryAfter(err)
			e.Hint = "lower keyferry's request rate to this account and region"
		case deniedCodes[code] || strings.HasPrefix(code, "AccessDenied") || status == http.StatusUnauthorized || status == http.StatusForbidden:
			e.Kind, e.Hint = store.ErrPermissionDenied, hintDenied
		case code == "DecryptionFailure" || code == "EncryptionFailure":
			e.Kind, e.Detail = store.ErrPermissionDenied, "the secret's KMS key could not be used ("+code+")"
			e.Hint = "check the KMS key's policy and that the key is enabled"
		case code == "InvalidParameterException" || code == "ValidationException" || code == "InvalidNextTokenException" ||
			code == "MalformedPolicyDocumentException" || code == "SerializationException":
			e.Kind, e.Detail = store.ErrInvalidValue, "Secrets Manager refused the request as invalid ("+code+")"
		case code == "InvalidRequestException":
			e.Kind, e.Detail = store.ErrConflict, "the secret's current state does not allow this operation"
		case status >= 500 || code == "InternalServiceError" || code == "InternalFailure" || code == "ServiceUnavailable":
			e.Kind, e.Detail = store.ErrUnavailable, "Secrets Manager failed on the server side ("+code+")"
		case status == http.StatusNotFound:
			e.Kind = store.ErrNotFound
		case status == http.StatusConflict:
			e.Kind = store.ErrConflict
		case status >= 400:
			e.Kind, e.Detail = store.ErrInvalidValue, "Secrets Manager refused the request ("+code+")"
		}
		return e
	}
	if status := httpStatus(err); status == http.StatusUnauthorized || status == http.StatusForbidden {
		// An error body the SDK could not decode (e.g. an XML 403 from an STS-style auth failure).
		e.Kind, e.Hint = store.ErrPermissionDenied, hintDenied
		return e
	}
	var se *smithyhttp.RequestSendError
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		e.Detail = "the operation was cancelled or timed out"
	case errors.As(err, &se) || errors.As(err, &ne):
		e.Detail = "Secrets Manager could not be reached"
		e.Hint = "check the endpoint, the network path and DNS"
	}
	return e
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// mentionsDeletion recognises the InvalidRequestException messages of a secret scheduled for deletion:
// AWS says "…because it was marked for deletion" / "…already scheduled for deletion"; moto says
// "…a secret that's currently marked deleted".
func mentionsDeletion(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "deletion") || strings.Contains(m, "marked deleted")
}

// errorCode is the AWS error code in err, if any.
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// softDeleted is the error for a secret whose DescribeSecret shows a DeletedDate.
func softDeleted(deleted *time.Time) *store.Error {
	d := "the secret is scheduled for deletion"
	if deleted != nil {
		d += fmt.Sprintf(" on %s", deleted.UTC().Format(time.RFC3339))
	}
	return &store.Error{Kind: store.ErrSoftDeleted, Detail: d, Hint: hintSoftDeleted}
}
