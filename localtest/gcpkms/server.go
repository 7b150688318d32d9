package gcpkms

import (
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/grpc"

	"github.com/keyferry/keyferry/localtest/fault"
	"github.com/keyferry/keyferry/localtest/gcp"
)

// Options configure the in-process Cloud KMS emulator.
type Options struct {
	// Fault is the fault layer in front of the server (its interceptors run first and count every call,
	// as "kms:AsymmetricSign", "kms:GetPublicKey", ...). Nil: a fresh layer with no rules, so calls are
	// still counted (see Server.Fault).
	Fault *fault.Layer
	// Interceptors run after the fault layer, outermost first, for the calls it lets through (for example
	// gcp.DenyToken).
	Interceptors []grpc.UnaryServerInterceptor
	// Now is the emulator's clock (create and generate times). Nil: time.Now.
	Now func() time.Time
}

// Server is a running Cloud KMS emulator: Addr, Fault, ClientOptions (for kms.NewKeyManagementClient) and
// Stop come from gcp.GRPCServer.
type Server struct {
	*gcp.GRPCServer
}

// Start starts the emulator on a free 127.0.0.1 port. Stop it with Stop.
func Start(opts Options) (*Server, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	g, err := gcp.ServeGRPC("kms emulator", opts.Fault, opts.Interceptors, func(s *grpc.Server) {
		kmspb.RegisterKeyManagementServiceServer(s, newService(now))
	})
	if err != nil {
		return nil, err
	}
	return &Server{GRPCServer: g}, nil
}
