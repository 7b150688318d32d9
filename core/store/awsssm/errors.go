package awsssm

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/keyferry/keyferry/core/store"
)

const hintDenied = "grant the identity keyferry runs as the ssm:* (and, for SecureString, kms:*) permissions this operation needs"

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
		code := ae.ErrorCode()
		status := httpStatus(err)
		_, throttle := retry.DefaultThrottleErrorCodes[code]
		_, extra := extraThrottles[code]
		switch {
		case code == "ParameterNotFound" || code == "ParameterVersionNotFound" || code == "InvalidResourceId":
			e.Kind = store.ErrNotFound
		case code == "ParameterAlreadyExists":
			e.Kind = store.ErrAlreadyExists
		case throttle || extra:
			e.Kind, e.Detail = store.ErrThrottled, "Parameter Store throttled the request ("+code+") and retries were exhausted"
			e.RetryAfter, _ = retryAfter(err)
			e.Hint = "lower keyferry's request rate to this account and region, or enable higher throughput"
		case deniedCodes[code] || strings.HasPrefix(code, "AccessDenied") || status == http.StatusUnauthorized || status == http.StatusForbidden:
			e.Kind, e.Hint = store.ErrPermissionDenied, hintDenied
		case code == "InvalidKeyId":
			e.Kind, e.Detail = store.ErrInvalidValue, "the KMS key id is not valid for SecureString"
			e.Hint = "check the store's kms_key_id (an alias such as alias/aws/ssm, a key id or a key ARN)"
		case code == "HierarchyLevelLimitExceededException" || code == "HierarchyTypeMismatchException":
			e.Kind, e.Detail = store.ErrInvalidName, "the name's hierarchy is refused ("+code+")"
		case code == "ParameterMaxVersionLimitExceeded":
			e.Kind, e.Detail = store.ErrConflict, "the parameter has 100 versions and the oldest carries a label"
			e.Hint = "move or delete the label on the oldest version, then write again"
		case code == "ParameterLimitExceeded":
			e.Kind, e.Detail = store.ErrConflict, "the account holds as many parameters as its tier allows"
			e.Hint = "delete unused parameters or use the advanced tier"
		case code == "TooManyTagsError":
			e.Kind = store.ErrInvalidTags
		case code == "ValidationException" || code == "InvalidParameters" || code == "ParameterPatternMismatchException" ||
			code == "UnsupportedParameterType" || code == "InvalidAllowedPatternException" || code == "InvalidFilterKey" ||
			code == "InvalidFilterOption" || code == "InvalidFilterValue" || code == "InvalidNextToken" || code == "SerializationException":
			e.Kind, e.Detail = store.ErrInvalidValue, "Parameter Store refused the request as invalid ("+code+")"
		case status >= 500 || code == "InternalServerError" || code == "InternalFailure" || code == "ServiceUnavailable":
			e.Kind, e.Detail = store.ErrUnavailable, "Parameter Store failed on the server side ("+code+")"
		case status == http.StatusNotFound:
			e.Kind = store.ErrNotFound
		case status == http.StatusConflict:
			e.Kind = store.ErrConflict
		case status >= 400:
			e.Kind, e.Detail = store.ErrInvalidValue, "Parameter Store refused the request ("+code+")"
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
		e.Detail = "Parameter Store could not be reached"
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

// errorCode is the AWS error code in err, if any.
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}
