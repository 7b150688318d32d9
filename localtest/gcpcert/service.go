package gcpcert

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/certificatemanager/apiv1/certificatemanagerpb"
	"cloud.google.com/go/longrunning/autogen/longrunningpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keyferry/keyferry/localtest/gcp"
)

// The service's naming and label rules.
var (
	parentRule     = regexp.MustCompile(`^projects/[^/]+/locations/[^/]+$`)
	certNameRule   = regexp.MustCompile(`^(projects/[^/]+/locations/[^/]+)/certificates/([^/]+)$`)
	opNameRule     = regexp.MustCompile(`^(projects/[^/]+/locations/[^/]+)/operations/[^/]+$`)
	certIDRule     = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	labelKeyRule   = regexp.MustCompile(`^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}$`)
	labelValueRule = regexp.MustCompile(`^[\p{Ll}\p{Lo}\p{N}_-]{0,63}$`)
)

const (
	maxLabels = 64
)

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func notFound(name string) error {
	return status.Errorf(codes.NotFound, "Resource '%s' was not found", name)
}

// stored is one certificate as the emulator keeps it.
type stored struct {
	cert   *certificatemanagerpb.Certificate // the output view: no private key
	keyPEM string                            // the leaf's key (PKCS#8); never returned by the API
}

// service implements the CertificateManager service's certificate calls; operations (below) serves the
// google.longrunning.Operations calls on the same state.
type service struct {
	certificatemanagerpb.UnimplementedCertificateManagerServer
	now func() time.Time

	mu    sync.Mutex
	certs map[string]*stored                  // by certificate name
	ops   map[string]*longrunningpb.Operation // by operation name
}

func newService(now func() time.Time) *service {
	return &service{now: now, certs: map[string]*stored{}, ops: map[string]*longrunningpb.Operation{}}
}

// selfManagedMarker is what the output view carries in the type oneof: an empty self_managed, since both
// of its fields are input only.
func selfManagedMarker() *certificatemanagerpb.Certificate_SelfManaged {
	return &certificatemanagerpb.Certificate_SelfManaged{SelfManaged: &certificatemanagerpb.Certificate_SelfManagedCertificate{}}
}

func validateLabels(labels map[string]string) error {
	if len(labels) > maxLabels {
		return invalid("a certificate can have at most %d labels, got %d", maxLabels, len(labels))
	}
	for k, v := range labels {
		if !labelKeyRule.MatchString(k) {
			return invalid("label key %q is invalid: it must start with a lowercase letter and hold at most 63 lowercase letters, digits, underscores and hyphens", k)
		}
		if !labelValueRule.MatchString(v) {
			return invalid("label value %q (key %q) is invalid: at most 63 lowercase letters, digits, underscores and hyphens", v, k)
		}
	}
	return nil
}

func cloneLabels(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// selfManagedOf returns the self_managed part of a certificate, refusing the types the emulator does not
// do.
func selfManagedOf(c *certificatemanagerpb.Certificate) (*certificatemanagerpb.Certificate_SelfManagedCertificate, error) {
	switch t := c.GetType().(type) {
	case *certificatemanagerpb.Certificate_SelfManaged:
		return t.SelfManaged, nil
	case *certificatemanagerpb.Certificate_Managed, *certificatemanagerpb.Certificate_ManagedIdentity:
		return nil, status.Error(codes.Unimplemented,
			"managed certificates are not emulated: this Certificate Manager emulator supports self_managed certificates only")
	default:
		return nil, invalid("certificate type is required: set self_managed with pem_certificate and pem_private_key")
	}
}

// applyMaterial puts what the parsed material determines into the output view.
func applyMaterial(c *certificatemanagerpb.Certificate, m *material) {
	c.Type = selfManagedMarker()
	c.PemCertificate = m.chainPEM
	c.SanDnsnames = append([]string(nil), m.chain[0].DNSNames...)
	c.ExpireTime = timestamppb.New(m.chain[0].NotAfter)
}

func (s *service) CreateCertificate(_ context.Context, req *certificatemanagerpb.CreateCertificateRequest) (*longrunningpb.Operation, error) {
	parent, id := req.GetParent(), req.GetCertificateId()
	if !parentRule.MatchString(parent) {
		return nil, invalid("parent %q is invalid: want projects/{project}/locations/{location}", parent)
	}
	if !certIDRule.MatchString(id) {
		return nil, invalid("certificate_id %q is invalid: it must be 1 to 63 characters, lowercase letters, digits and hyphens, starting with a letter", id)
	}
	in := req.GetCertificate()
	if in == nil {
		return nil, invalid("certificate is required")
	}
	sm, err := selfManagedOf(in)
	if err != nil {
		return nil, err
	}
	if err := validateLabels(in.GetLabels()); err != nil {
		return nil, err
	}
	if _, ok := certificatemanagerpb.Certificate_Scope_name[int32(in.GetScope())]; !ok {
		return nil, invalid("scope %d is not a known scope", in.GetScope())
	}
	m, err := parseSelfManaged(sm)
	if err != nil {
		return nil, err
	}

	name := parent + "/certificates/" + id
	now := timestamppb.New(s.now())
	c := &certificatemanagerpb.Certificate{
		Name:        name,
		Description: in.GetDescription(),
		CreateTime:  now,
		UpdateTime:  now,
		Labels:      cloneLabels(in.GetLabels()),
		Scope:       in.GetScope(),
	}
	applyMaterial(c, m)

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.certs[name]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "Resource '%s' already exists", name)
	}
	s.certs[name] = &stored{cert: c, keyPEM: m.keyPEM}
	return s.doneOp(parent, name, "create", c)
}

func (s *service) GetCertificate(_ context.Context, req *certificatemanagerpb.GetCertificateRequest) (*certificatemanagerpb.Certificate, error) {
	name := req.GetName()
	if !certNameRule.MatchString(name) {
		return nil, invalid("name %q is invalid: want projects/{project}/locations/{location}/certificates/{certificate}", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.certs[name]
	if !ok {
		return nil, notFound(name)
	}
	return proto.Clone(st.cert).(*certificatemanagerpb.Certificate), nil
}

func (s *service) ListCertificates(_ context.Context, req *certificatemanagerpb.ListCertificatesRequest) (*certificatemanagerpb.ListCertificatesResponse, error) {
	parent := req.GetParent()
	if !parentRule.MatchString(parent) {
		return nil, invalid("parent %q is invalid: want projects/{project}/locations/{location}", parent)
	}
	if req.GetFilter() != "" {
		return nil, status.Error(codes.Unimplemented, "list filters are not emulated")
	}
	switch strings.TrimSpace(req.GetOrderBy()) {
	case "", "name", "name asc":
	default:
		return nil, status.Errorf(codes.Unimplemented, "order_by %q is not emulated (only name)", req.GetOrderBy())
	}
	prefix := parent + "/certificates/"
	size, after, err := gcp.Paging(req.GetPageSize(), req.GetPageToken(), prefix)
	if err != nil {
		return nil, err
	}

	s.mu.Lock()
	var names []string
	for n := range s.certs {
		if strings.HasPrefix(n, prefix) && n > after {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	out := &certificatemanagerpb.ListCertificatesResponse{}
	for i, n := range names {
		if i == size {
			out.NextPageToken = gcp.PageToken(names[i-1])
			break
		}
		out.Certificates = append(out.Certificates, proto.Clone(s.certs[n].cert).(*certificatemanagerpb.Certificate))
	}
	s.mu.Unlock()
	return out, nil
}

func (s *service) UpdateCertificate(_ context.Context, req *certificatemanagerpb.UpdateCertificateRequest) (*longrunningpb.Operation, error) {
	in := req.GetCertificate()
	if in == nil {
		return nil, invalid("certificate is required")
	}
	name := in.GetName()
	sub := certNameRule.FindStringSubmatch(name)
	if sub == nil {
		return nil, invalid("certificate.name %q is invalid: want projects/{project}/locations/{location}/certificates/{certificate}", name)
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		return nil, invalid("update_mask is required")
	}
	var setLabels, setDescription, setMaterial bool
	for _, p := range paths {
		switch p {
		case "labels":
			setLabels = true
		case "description":
			setDescription = true
		case "self_managed", "selfManaged":
			setMaterial = true
		case "scope", "tags", "name", "managed", "managed_identity", "managedIdentity":
			return nil, invalid("update_mask path %q names a field that cannot be updated", p)
		default:
			return nil, invalid("update_mask path %q is not a known updatable field (labels, description, self_managed)", p)
		}
	}
	var m *material
	if setMaterial {
		sm, err := selfManagedOf(in)
		if err != nil {
			return nil, err
		}
		if m, err = parseSelfManaged(sm); err != nil {
			return nil, err
		}
	}
	if setLabels {
		if err := validateLabels(in.GetLabels()); err != nil {
			return nil, err
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.certs[name]
	if !ok {
		return nil, notFound(name)
	}
	c := proto.Clone(st.cert).(*certificatemanagerpb.Certificate)
	keyPEM := st.keyPEM
	if setLabels {
		c.Labels = cloneLabels(in.GetLabels())
	}
	if setDescription {
		c.Description = in.GetDescription()
	}
	if m != nil {
		applyMaterial(c, m)
		keyPEM = m.keyPEM
	}
	c.UpdateTime = timestamppb.New(s.now())
	s.certs[name] = &stored{cert: c, keyPEM: keyPEM}
	return s.doneOp(sub[1], name, "update", c)
}

func (s *service) DeleteCertificate(_ context.Context, req *certificatemanagerpb.DeleteCertificateRequest) (*longrunningpb.Operation, error) {
	name := req.GetName()
	sub := certNameRule.FindStringSubmatch(name)
	if sub == nil {
		return nil, invalid("name %q is invalid: want projects/{project}/locations/{location}/certificates/{certificate}", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.certs[name]; !ok {
		return nil, notFound(name)
	}
	delete(s.certs, name)
	return s.doneOp(sub[1], name, "delete", &emptypb.Empty{})
}

// doneOp records and returns a finished operation on target with resp as its response. Call with mu held.
func (s *service) doneOp(location, target, verb string, resp proto.Message) (*longrunningpb.Operation, error) {
	now := s.now()
	meta, err := anypb.New(&certificatemanagerpb.OperationMetadata{
		CreateTime: timestamppb.New(now),
		EndTime:    timestamppb.New(now),
		Target:     target,
		Verb:       verb,
		ApiVersion: "v1",
	})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "packing operation metadata: %v", err)
	}
	body, err := anypb.New(resp)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "packing operation response: %v", err)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	op := &longrunningpb.Operation{
		Name:     fmt.Sprintf("%s/operations/operation-%d-%s", location, now.UnixMilli(), hex.EncodeToString(b)),
		Metadata: meta,
		Done:     true,
		Result:   &longrunningpb.Operation_Response{Response: body},
	}
	s.ops[op.Name] = op
	return proto.Clone(op).(*longrunningpb.Operation), nil
}

// tlsCertificate is the stored chain and key of a certificate as a tls.Certificate.
func (s *service) tlsCertificate(name string) (tls.Certificate, error) {
	s.mu.Lock()
	st, ok := s.certs[name]
	s.mu.Unlock()
	if !ok {
		return tls.Certificate{}, fmt.Errorf("certificate %s not found", name)
	}
	return tls.X509KeyPair([]byte(st.cert.GetPemCertificate()), []byte(st.keyPEM))
}

// operations serves google.longrunning.Operations for the operations the service recorded. Every
// operation is done when it is created, so Wait and Cancel have nothing to wait for or cancel.
type operations struct {
	longrunningpb.UnimplementedOperationsServer
	s *service
}

var _ longrunningpb.OperationsServer = (*operations)(nil)

func (o *operations) get(name string) (*longrunningpb.Operation, error) {
	if !opNameRule.MatchString(name) {
		return nil, invalid("operation name %q is invalid: want projects/{project}/locations/{location}/operations/{operation}", name)
	}
	o.s.mu.Lock()
	defer o.s.mu.Unlock()
	op, ok := o.s.ops[name]
	if !ok {
		return nil, notFound(name)
	}
	return proto.Clone(op).(*longrunningpb.Operation), nil
}

func (o *operations) GetOperation(_ context.Context, req *longrunningpb.GetOperationRequest) (*longrunningpb.Operation, error) {
	return o.get(req.GetName())
}

func (o *operations) WaitOperation(_ context.Context, req *longrunningpb.WaitOperationRequest) (*longrunningpb.Operation, error) {
	return o.get(req.GetName())
}

func (o *operations) CancelOperation(_ context.Context, req *longrunningpb.CancelOperationRequest) (*emptypb.Empty, error) {
	if _, err := o.get(req.GetName()); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

func (o *operations) DeleteOperation(_ context.Context, req *longrunningpb.DeleteOperationRequest) (*emptypb.Empty, error) {
	if _, err := o.get(req.GetName()); err != nil {
		return nil, err
	}
	o.s.mu.Lock()
	delete(o.s.ops, req.GetName())
	o.s.mu.Unlock()
	return &emptypb.Empty{}, nil
}

// ListOperations lists the operations of one location (name is projects/{project}/locations/{location}).
func (o *operations) ListOperations(_ context.Context, req *longrunningpb.ListOperationsRequest) (*longrunningpb.ListOperationsResponse, error) {
	loc := req.GetName()
	if !parentRule.MatchString(loc) {
		return nil, invalid("name %q is invalid: want projects/{project}/locations/{location}", loc)
	}
	if req.GetFilter() != "" {
		return nil, status.Error(codes.Unimplemented, "operation filters are not emulated")
	}
	prefix := loc + "/operations/"
	size, after, err := gcp.Paging(req.GetPageSize(), req.GetPageToken(), prefix)
	if err != nil {
		return nil, err
	}
	o.s.mu.Lock()
	defer o.s.mu.Unlock()
	var names []string
	for n := range o.s.ops {
		if strings.HasPrefix(n, prefix) && n > after {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	out := &longrunningpb.ListOperationsResponse{}
	for i, n := range names {
		if i == size {
			out.NextPageToken = gcp.PageToken(names[i-1])
			break
		}
		out.Operations = append(out.Operations, proto.Clone(o.s.ops[n]).(*longrunningpb.Operation))
	}
	return out, nil
}
