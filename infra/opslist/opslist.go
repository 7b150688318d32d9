// Package opslist lists the cloud SDK operations keyferry's deployed functions call, read from the code
// itself, so that the infrastructure checks (infra/cdk, infra/bicep/bicepcheck, infra/gcp/tfcheck) can compare
// them with what the templates grant: every operation used must be granted, and nothing granted may be
// unused unless it is a documented deliberate extra.
//
// # How the operations are found
//
// Scan asks `go list -deps -export` for the packages the three functions (functions/aws, functions/azure,
// functions/gcp) are built from, type-checks keyferry's own packages among them from source (their imports
// come from the compiler's export data), and records every call that is an SDK operation:
//
//   - AWS SDK v2: a call whose callee takes a *<service>.<Op>Input — a client method, a paginator
//     constructor (New<Op>Paginator) or a method of a narrow interface mirroring the client (certs.ACMClient,
//     kmssigner's awsAPI). The service is the Input type's package.
//   - Azure Key Vault (azsecrets, azcertificates, azkeys): a call whose callee takes a *<pkg>.<Op>Options
//     (every client method and pager constructor has one; ClientOptions is not an operation).
//   - Google Cloud: a call whose callee takes a *<pb>.<Op>Request (gRPC clients and mirroring interfaces);
//     Wait/Poll on a long-running <X>Operation (polling is GetOperation); Publish on a Pub/Sub Publisher.
//   - Azure REST without an SDK client: GetToken with a constant scope (notify's Event Grid publisher gets
//     a token for https://eventgrid.azure.net/.default and posts the events itself).
//   - HashiCorp Vault: Logical() reads, writes, lists and deletes, for information (Vault policies are not
//     part of this infrastructure).
//
// Only callees in an SDK package or methods of interfaces count, so a keyferry helper taking an Input does
// not add an operation its body does not call.
//
// # Code the functions link but never run
//
// CLIOnly lists functions and packages that the functions' binaries contain but only the CLI calls (the
// certificate inventory). Their calls are left out, and Scan fails if any other scanned code refers to
// them, so an exclusion cannot silently hide an operation a function starts to make.
package opslist

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/constant"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Module is keyferry's module path.
const Module = "github.com/keyferry/keyferry"

// Cloud is where an operation goes.
type Cloud string

// Clouds.
const (
	AWS   Cloud = "aws"
	Azure Cloud = "azure"
	GCP   Cloud = "gcp"
	Vault Cloud = "vault"
)

// Functions are the packages the deployed functions are built from.
var Functions = []string{"./functions/aws", "./functions/azure", "./functions/gcp"}

// Exclusion is code linked into the functions that only the CLI runs.
type Exclusion struct {
	// Package excludes a whole package (import path); Func one function or method, written as
	// "<import path>.<Func>" or "<import path>.(*<Type>).<Method>" / ".(<Type>).<Method>".
	Package, Func string
	Why           string
}

// CLIOnly is the code the functions link but never run.
var CLIOnly = []Exclusion{
	{Package: Module + "/core/inventory", Why: "the certificate inventory is `keyferry inventory` (cmd/keyferry), run with the operator's credentials"},
	{Func: Module + "/core/certmgr.(*Manager).Inventory", Why: "called by `keyferry inventory` only; the functions' jobs are sweep, deep-sweep and renew"},
	{Func: Module + "/core/certmgr.(*Manager).sources", Why: "the inventory's sources (ACM, Key Vault and Certificate Manager listings, Vault PKI)"},
}

// Op is one SDK operation and where the code calls it.
type Op struct {
	Cloud   Cloud
	Service string   // the SDK package that names the operation (the Input/Options/Request type's package)
	Name    string   // the operation: GetSecretValue, SetSecret, AddSecretVersion, …
	Sites   []string // file:line (relative to the module root) of each call
}

// Key is "<service package>.<operation>".
func (o Op) Key() string { return o.Service + "." + o.Name }

func (o Op) String() string {
	return fmt.Sprintf("%s %s (%s)", path(o.Service), o.Name, strings.Join(o.Sites, ", "))
}

func path(service string) string { return service[strings.LastIndex(service, "/")+1:] }

// Result is what Scan found.
type Result struct {
	Ops      []Op     // sorted by cloud, service, name
	Packages []string // keyferry packages scanned
}

// ByCloud returns the operations of one cloud.
func (r *Result) ByCloud(c Cloud) []Op {
	var out []Op
	for _, o := range r.Ops {
		if o.Cloud == c {
			out = append(out, o)
		}
	}
	return out
}

// Scan lists the SDK operations of the packages the functions are built from. moduleRoot is the directory
// of keyferry's go.mod.
func Scan(ctx context.Context, moduleRoot string) (*Result, error) {
	return ScanPackages(ctx, moduleRoot, Functions, CLIOnly)
}

// ScanPackages scans keyferry's packages among patterns and their dependencies, leaving out excluded code.
func ScanPackages(ctx context.Context, moduleRoot string, patterns []string, excluded []Exclusion) (*Result, error) {
	moduleRoot, err := filepath.Abs(moduleRoot)
	if err != nil {
		return nil, fmt.Errorf("opslist: %w", err)
	}
	pkgs, err := goList(ctx, moduleRoot, patterns)
	if err != nil {
		return nil, err
	}
	exports := map[string]string{}
	for _, p := range pkgs {
		if p.Export != "" {
			exports[p.ImportPath] = p.Export
		}
	}
	s := newScanner(moduleRoot, exports, excluded)
	res := &Result{}
	for _, p := range pkgs {
		if p.ImportPath != Module && !strings.HasPrefix(p.ImportPath, Module+"/") {
			continue
		}
		files := make([]string, 0, len(p.GoFiles))
		for _, f := range p.GoFiles {
			files = append(files, filepath.Join(p.Dir, f))
		}
		if err := s.checkPackage(p.ImportPath, files); err != nil {
			return nil, err
		}
		res.Packages = append(res.Packages, p.ImportPath)
	}
	if err := s.finish(); err != nil {
		return nil, err
	}
	res.Ops = s.ops()
	return res, nil
}

type listedPackage struct {
	ImportPath, Dir, Export string
	GoFiles                 []string
	Error                   *struct{ Err string }
}

// goList runs `go list -deps -export` in dir: every package the patterns need, with the compiler's export
// data (built, or taken from the build cache).
func goList(ctx context.Context, dir string, patterns []string) ([]listedPackage, error) {
	args := append([]string{"list", "-deps", "-export", "-buildvcs=false", "-json=ImportPath,Dir,Export,GoFiles,Error"}, patterns...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("opslist: go list in %s: %w: %s", dir, err, strings.TrimSpace(stderr.String()))
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("opslist: reading go list output: %w", err)
		}
		if p.Error != nil {
			return nil, fmt.Errorf("opslist: package %s: %s", p.ImportPath, p.Error.Err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// ---- the scanner ----

type scanner struct {
	root     string
	fset     *token.FileSet
	imp      types.Importer
	excluded []Exclusion
	found    map[string]*Op
	// dry is set while an excluded package is scanned: its operations are not recorded, only which of its
	// functions and types make them (opFuncs, opTypes).
	dry     bool
	dryHit  bool
	opFuncs map[string]bool // excluded packages' functions and methods that make operations
	opTypes map[string]bool // excluded packages' types with such methods ("pkg.T")
	// refs are references from included code into excluded code, checked by finish.
	refs []ref
}

type ref struct {
	site, key string
	typ       bool // key names a type
	pkgFunc   bool // key names a package-level function of an excluded package
}

func newScanner(root string, exports map[string]string, excluded []Exclusion) *scanner {
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(p string) (io.ReadCloser, error) {
		f, ok := exports[p]
		if !ok {
			return nil, fmt.Errorf("no export data for %s", p)
		}
		return os.Open(f)
	})
	return &scanner{root: root, fset: fset, imp: imp, excluded: excluded, found: map[string]*Op{},
		opFuncs: map[string]bool{}, opTypes: map[string]bool{}}
}

// checkPackage type-checks one package from its files and records its operations.
func (s *scanner) checkPackage(importPath string, files []string) error {
	var afs []*ast.File
	for _, f := range files {
		af, err := parser.ParseFile(s.fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			return fmt.Errorf("opslist: %w", err)
		}
		afs = append(afs, af)
	}
	info := &types.Info{
		Types: map[ast.Expr]types.TypeAndValue{},
		Uses:  map[*ast.Ident]types.Object{},
		Defs:  map[*ast.Ident]types.Object{},
	}
	conf := types.Config{Importer: s.imp}
	pkg, err := conf.Check(importPath, s.fset, afs, info)
	if err != nil {
		return fmt.Errorf("opslist: type-checking %s: %w", importPath, err)
	}
	if s.packageExcluded(importPath) {
		// Learn which functions and types make operations, so that references to them from code the
		// functions run are caught; record no operation.
		s.dry = true
		defer func() { s.dry = false }()
		for _, af := range afs {
			for _, d := range af.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok {
					continue
				}
				s.dryHit = false
				s.walk(pkg, info, fd)
				if obj, ok := info.Defs[fd.Name].(*types.Func); ok && s.dryHit {
					s.opFuncs[funcKey(obj)] = true
					if t := recvTypeKey(obj); t != "" {
						s.opTypes[t] = true
					}
				}
			}
		}
		return nil
	}
	for _, af := range afs {
		for _, d := range af.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if ok {
				if obj, ok := info.Defs[fd.Name].(*types.Func); ok && s.funcExcluded(funcKey(obj)) {
					continue
				}
			}
			s.walk(pkg, info, d)
		}
	}
	return nil
}

// recvTypeKey is "pkg.T" for a method of T or *T, else "".
func recvTypeKey(fn *types.Func) string {
	sig, _ := fn.Type().(*types.Signature)
	if sig == nil || sig.Recv() == nil {
		return ""
	}
	rt := sig.Recv().Type()
	if p, ok := rt.(*types.Pointer); ok {
		rt = p.Elem()
	}
	if n, ok := rt.(*types.Named); ok && n.Obj().Pkg() != nil {
		return n.Obj().Pkg().Path() + "." + n.Obj().Name()
	}
	return ""
}

func (s *scanner) packageExcluded(p string) bool {
	for _, e := range s.excluded {
		if e.Package != "" && e.Package == p {
			return true
		}
	}
	return false
}

func (s *scanner) funcExcluded(key string) bool {
	for _, e := range s.excluded {
		if e.Func != "" && e.Func == key {
			return true
		}
	}
	return false
}

// funcKey names a function as CLIOnly does: pkg.Func, pkg.(*T).M or pkg.(T).M.
func funcKey(fn *types.Func) string {
	if fn.Pkg() == nil {
		return fn.Name()
	}
	sig, _ := fn.Type().(*types.Signature)
	if sig == nil || sig.Recv() == nil {
		return fn.Pkg().Path() + "." + fn.Name()
	}
	rt := sig.Recv().Type()
	star := ""
	if p, ok := rt.(*types.Pointer); ok {
		star, rt = "*", p.Elem()
	}
	if n, ok := rt.(*types.Named); ok {
		return fmt.Sprintf("%s.(%s%s).%s", fn.Pkg().Path(), star, n.Obj().Name(), fn.Name())
	}
	return fn.Pkg().Path() + "." + fn.Name()
}

func (s *scanner) site(pos token.Pos) string {
	p := s.fset.Position(pos)
	rel, err := filepath.Rel(s.root, p.Filename)
	if err != nil {
		rel = p.Filename
	}
	return fmt.Sprintf("%s:%d", filepath.ToSlash(rel), p.Line)
}

func (s *scanner) walk(pkg *types.Package, info *types.Info, n ast.Node) {
	ast.Inspect(n, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.Ident:
			if s.dry {
				break
			}
			switch obj := info.Uses[n].(type) {
			case *types.Func:
				switch {
				case obj.Pkg() == nil || obj.Pkg() == pkg && !s.funcExcluded(funcKey(obj)):
				case s.funcExcluded(funcKey(obj)):
					s.refs = append(s.refs, ref{site: s.site(n.Pos()), key: funcKey(obj)})
				case s.packageExcluded(obj.Pkg().Path()):
					s.refs = append(s.refs, ref{site: s.site(n.Pos()), key: funcKey(obj), pkgFunc: recvTypeKey(obj) == ""})
				}
			case *types.TypeName:
				if obj.Pkg() != nil && obj.Pkg() != pkg && s.packageExcluded(obj.Pkg().Path()) {
					s.refs = append(s.refs, ref{site: s.site(n.Pos()), key: obj.Pkg().Path() + "." + obj.Name(), typ: true})
				}
			}
		case *ast.CallExpr:
			s.call(info, n)
		}
		return true
	})
}

// callee returns the function or method a call invokes, if it is one (not a conversion or a func value).
func callee(info *types.Info, call *ast.CallExpr) *types.Func {
	fun := ast.Unparen(call.Fun)
	if ix, ok := fun.(*ast.IndexExpr); ok { // generic instantiation
		fun = ix.X
	}
	switch f := fun.(type) {
	case *ast.SelectorExpr:
		fn, _ := info.Uses[f.Sel].(*types.Func)
		return fn
	case *ast.Ident:
		fn, _ := info.Uses[f].(*types.Func)
		return fn
	}
	return nil
}

func isInterfaceMethod(fn *types.Func) bool {
	sig, ok := fn.Type().(*types.Signature)
	if !ok || sig.Recv() == nil {
		return false
	}
	_, ok = sig.Recv().Type().Underlying().(*types.Interface)
	return ok
}

func inModule(p *types.Package) bool {
	return p != nil && (p.Path() == Module || strings.HasPrefix(p.Path(), Module+"/"))
}

// Package path prefixes of the SDKs.
const (
	awsServicePrefix = "github.com/aws/aws-sdk-go-v2/service/"
	azureKeyVault    = "github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/"
	azureCore        = "github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azureIdentity    = "github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	googleCloud      = "cloud.google.com/go/"
	vaultAPI         = "github.com/hashicorp/vault/api"
	// AzureTokenService is the Service of GetToken operations: Name is the constant scope.
	AzureTokenService = "entra-token-scope"
)

// call records the operation a call makes, if any.
func (s *scanner) call(info *types.Info, call *ast.CallExpr) {
	fn := callee(info, call)
	if fn == nil || fn.Pkg() == nil {
		return
	}
	sdkCallee := !inModule(fn.Pkg())
	if !sdkCallee && !isInterfaceMethod(fn) {
		return // keyferry's own function: its body is scanned where it is declared
	}
	sig := fn.Type().(*types.Signature)
	// Operations named by their request type.
	for i := 0; i < sig.Params().Len(); i++ {
		t := sig.Params().At(i).Type()
		if p, ok := t.(*types.Pointer); ok {
			t = p.Elem()
		}
		n, ok := t.(*types.Named)
		if !ok || n.Obj().Pkg() == nil {
			continue
		}
		pp, name := n.Obj().Pkg().Path(), n.Obj().Name()
		switch {
		case strings.HasPrefix(pp, awsServicePrefix) && !strings.HasSuffix(pp, "/types") && strings.HasSuffix(name, "Input") && name != "Input":
			s.add(AWS, pp, strings.TrimSuffix(name, "Input"), call.Pos())
			return
		case strings.HasPrefix(pp, azureKeyVault) && strings.HasSuffix(name, "Options") && name != "ClientOptions" && name != "Options":
			s.add(Azure, pp, strings.TrimSuffix(name, "Options"), call.Pos())
			return
		case strings.HasPrefix(pp, googleCloud) && strings.HasSuffix(pp, "pb") && strings.HasSuffix(name, "Request") && name != "Request":
			s.add(GCP, pp, strings.TrimSuffix(name, "Request"), call.Pos())
			return
		}
	}
	recv := ""
	if sig.Recv() != nil {
		rt := sig.Recv().Type()
		if p, ok := rt.(*types.Pointer); ok {
			rt = p.Elem()
		}
		if n, ok := rt.(*types.Named); ok {
			recv = n.Obj().Name()
		}
	}
	pp := fn.Pkg().Path()
	switch {
	// Long-running operations poll GetOperation on the service's operations endpoint.
	case strings.HasPrefix(pp, googleCloud) && strings.HasSuffix(recv, "Operation") && (fn.Name() == "Wait" || fn.Name() == "Poll"):
		s.add(GCP, pp, "GetOperation", call.Pos())
	case strings.HasPrefix(pp, googleCloud+"pubsub") && recv == "Publisher" && fn.Name() == "Publish":
		s.add(GCP, pp, "Publish", call.Pos())
	case pp == vaultAPI && recv == "Logical":
		s.add(Vault, pp, fn.Name(), call.Pos())
	case fn.Name() == "GetToken" && (strings.HasPrefix(pp, azureCore) || strings.HasPrefix(pp, azureIdentity)):
		for _, scope := range constantScopes(info, call) {
			s.add(Azure, AzureTokenService, scope, call.Pos())
		}
	}
}

// constantScopes returns the constant strings of the Scopes field of GetToken's options literal.
func constantScopes(info *types.Info, call *ast.CallExpr) []string {
	if len(call.Args) < 2 {
		return nil
	}
	lit, ok := ast.Unparen(call.Args[1]).(*ast.CompositeLit)
	if !ok {
		return nil
	}
	var out []string
	for _, e := range lit.Elts {
		kv, ok := e.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		if k, ok := kv.Key.(*ast.Ident); !ok || k.Name != "Scopes" {
			continue
		}
		list, ok := ast.Unparen(kv.Value).(*ast.CompositeLit)
		if !ok {
			continue
		}
		for _, el := range list.Elts {
			if tv, ok := info.Types[el]; ok && tv.Value != nil && tv.Value.Kind() == constant.String {
				out = append(out, constant.StringVal(tv.Value))
			}
		}
	}
	return out
}

func (s *scanner) add(c Cloud, service, name string, pos token.Pos) {
	if s.dry {
		s.dryHit = true
		return
	}
	key := service + "." + name
	o := s.found[key]
	if o == nil {
		o = &Op{Cloud: c, Service: service, Name: name}
		s.found[key] = o
	}
	site := s.site(pos)
	for _, have := range o.Sites {
		if have == site {
			return
		}
	}
	o.Sites = append(o.Sites, site)
}

// finish fails if code the functions run refers to excluded code that makes operations: an excluded
// function, a package-level function of an excluded package, or a type (or method of a type) of an
// excluded package that makes operations. Plain data types and their accessors are fine.
func (s *scanner) finish() error {
	var bad []string
	for _, r := range s.refs {
		hit := s.funcExcluded(r.key) || r.pkgFunc
		switch {
		case r.typ:
			hit = s.opTypes[r.key]
		case !hit:
			hit = s.opFuncs[r.key]
			if t := r.key; strings.Contains(t, ".(") {
				// a method: also when its type makes operations elsewhere
				pkgPart, rest, _ := strings.Cut(t, ".(")
				typ, _, _ := strings.Cut(strings.TrimPrefix(rest, "*"), ")")
				hit = hit || s.opTypes[pkgPart+"."+typ]
			}
		}
		if hit {
			bad = append(bad, fmt.Sprintf("%s refers to %s", r.site, r.key))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	return fmt.Errorf("opslist: code the functions run refers to code listed as CLI-only, so its operations may run in a function: "+
		"grant them and remove the exclusion (opslist.CLIOnly):\n  %s", strings.Join(bad, "\n  "))
}

func (s *scanner) ops() []Op {
	out := make([]Op, 0, len(s.found))
	for _, o := range s.found {
		sort.Strings(o.Sites)
		out = append(out, *o)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Cloud != out[j].Cloud {
			return out[i].Cloud < out[j].Cloud
		}
		return out[i].Key() < out[j].Key()
	})
	return out
}
