package gcpcert

import (
	"crypto/tls"
	"time"

	"cloud.google.com/go/certificatemanager/apiv1/certificatemanagerpb"
	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"google.golang.org/grpc"

	"github.com/keyferry/keyferry/localtest/fault"
	"github.com/keyferry/keyferry/localtest/gcp"
)

// Options configure the in-process Certificate Manager emulator.
type Options struct {
	// Fault is the fault layer in front of the server (its interceptors run first and count every call,
	// as "certificatemanager:CreateCertificate", "longrunning:GetOperation", ...). Nil: a fresh layer with
	// no rules, so calls are still counted (see Server.Fault).
	Fault *fault.Layer
	// Interceptors run after the fault layer, outermost first, for the calls it lets through (for example
	// gcp.DenyToken).
	Interceptors []grpc.UnaryServerInterceptor
	// Now is the emulator's clock (create/update times, operation times). Nil: time.Now.
	Now func() time.Time
}

// Server is a running Certificate Manager emulator: Addr, Fault, ClientOptions (for
// certificatemanager.NewClient) and Stop come from gcp.GRPCServer.
type Server struct {
	*gcp.GRPCServer
	svc *service
}

// Start starts the emulator on a free 127.0.0.1 port. Stop it with Stop.
func Start(opts Options) (*Server, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	svc := newService(now)
	g, err := gcp.ServeGRPC("certificate manager emulator", opts.Fault, opts.Interceptors, func(s *grpc.Server) {
		certificatemanagerpb.RegisterCertificateManagerServer(s, svc)
		longrunningpb.RegisterOperationsServer(s, &operations{s: svc})
	})
	if err != nil {
		return nil, err
	}
	return &Server{GRPCServer: g, svc: svc}, nil
}

// TLSCertificate returns the stored chain and private key of the certificate name (projects/{p}/locations/
// {l}/certificates/{id}) as a tls.Certificate, as a load balancer using it would present it. It is for
// in-process tests only: the API never returns the private key.
func (s *Server) TLSCertificate(name string) (tls.Certificate, error) {
	return s.svc.tlsCertificate(name)
}
