package fault

import (
	"context"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// GRPCAPI names a gRPC call: "/google.cloud.secretmanager.v1.SecretManagerService/AddSecretVersion"
// becomes "secretmanager:AddSecretVersion".
func GRPCAPI(fullMethod string) string {
	svc, method, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	parts := strings.Split(svc, ".")
	name := svc
	if len(parts) >= 3 && parts[0] == "google" && parts[1] == "cloud" {
		name = parts[2] // google.cloud.<api>.v1.Service
	} else if len(parts) >= 2 && parts[0] == "google" {
		name = parts[1] // google.pubsub.v1.Publisher
	}
	return name + ":" + method
}

func (l *Layer) grpcDecide(ctx context.Context, fullMethod string) error {
	out, rule := l.Decide(GRPCAPI(fullMethod))
	if rule.Latency > 0 {
		t := time.NewTimer(rule.Latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	switch out {
	case Throttled:
		st := status.New(codes.ResourceExhausted, "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute' of service.")
		if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(rule.RetryAfter)}); err == nil {
			st = d
		}
		return st.Err()
	case ServerError:
		return status.Error(codes.Unavailable, "The service is currently unavailable.")
	case ResetConn:
		return status.Error(codes.Unavailable, "connection reset by peer")
	}
	return nil
}

// UnaryServerInterceptor puts the layer in front of a gRPC server's unary calls.
func (l *Layer) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if err := l.grpcDecide(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
}

// StreamServerInterceptor puts the layer in front of a gRPC server's streaming calls.
func (l *Layer) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if err := l.grpcDecide(ss.Context(), info.FullMethod); err != nil {
			return err
		}
		return h(srv, ss)
	}
}

// ServerOptions returns both interceptors as grpc.ServerOptions.
func (l *Layer) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(l.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(l.StreamServerInterceptor())}
}
