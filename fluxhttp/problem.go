package fluxhttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/flux-go/flux"
)

// Problem is an RFC 9457 problem detail: the body of every error response
// (application/problem+json), and the error [Client] returns for one.
// errors.Is matches a Problem to the flux sentinel of its Type, so a
// client tests errors.Is(err, flux.ErrRunNotFound) as an engine's caller
// would.
type Problem struct {
	// Type identifies the kind of problem, a URN such as
	// "urn:flux:problem:run-not-found".
	Type string `json:"type"`
	// Title is a short summary of the kind of problem.
	Title string `json:"title"`
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Detail explains this occurrence.
	Detail string `json:"detail,omitempty"`
	// Field is the input field at fault, for input that does not decode,
	// as a dotted path ("items.0.qty").
	Field string `json:"field,omitempty"`
	// Offset is the byte offset in the body where decoding failed.
	Offset int64 `json:"offset,omitempty"`
}

// Error returns the status, title and detail.
func (p *Problem) Error() string {
	s := fmt.Sprintf("fluxhttp: %d %s", p.Status, p.Title)
	if p.Detail != "" {
		s += ": " + p.Detail
	}
	return s
}

// Is reports whether target is the flux sentinel error of p's Type.
func (p *Problem) Is(target error) bool {
	for _, k := range problemKinds {
		if k.typ == p.Type {
			return k.err != nil && target == k.err
		}
	}
	return false
}

// Problem types.
const (
	typePrefix          = "urn:flux:problem:"
	typeBadJSON         = typePrefix + "bad-json"
	typeInvalidInput    = typePrefix + "invalid-input"
	typeBadRequest      = typePrefix + "bad-request"
	typeForbidden       = typePrefix + "forbidden"
	typeNotFound        = typePrefix + "not-found"
	typeWorkflowUnknown = typePrefix + "workflow-not-found"
	typeMethod          = typePrefix + "method-not-allowed"
	typeTooLarge        = typePrefix + "payload-too-large"
	typeUnavailable     = typePrefix + "unavailable"
	typeCorrupt         = typePrefix + "corrupt"
)

// problemKinds maps flux's sentinel errors to problems, most specific
// first.
var problemKinds = []struct {
	err    error
	typ    string
	title  string
	status int
}{
	{flux.ErrInvalidInput, typeInvalidInput, "Invalid input", http.StatusBadRequest},
	{flux.ErrPayloadTooLarge, typeTooLarge, "Payload too large", http.StatusRequestEntityTooLarge},
	{flux.ErrRunNotFound, typePrefix + "run-not-found", "Run not found", http.StatusNotFound},
	{flux.ErrStepNotFound, typePrefix + "step-not-found", "Step not found", http.StatusNotFound},
	{flux.ErrCommitted, typePrefix + "committed", "Commit already completed", http.StatusConflict},
	{flux.ErrStepNotReached, typePrefix + "step-not-reached", "Step not reached", http.StatusConflict},
	{flux.ErrWrongWorkflow, typePrefix + "wrong-workflow", "Run of another workflow", http.StatusConflict},
	{flux.ErrRunActive, typePrefix + "run-active", "Run active", http.StatusConflict},
	{flux.ErrRunFinished, typePrefix + "run-finished", "Run finished", http.StatusConflict},
	{flux.ErrDefinitionChanged, typePrefix + "definition-changed", "Workflow definition changed", http.StatusConflict},
	{flux.ErrIllegalTransition, typePrefix + "illegal-transition", "Illegal state transition", http.StatusConflict},
	{flux.ErrConflict, typePrefix + "conflict", "Conflicting write", http.StatusConflict},
	{flux.ErrCorrupt, typeCorrupt, "Corrupt run", http.StatusInternalServerError},
	{flux.ErrClosed, typeUnavailable, "Unavailable", http.StatusServiceUnavailable},
	{nil, typeBadJSON, "Bad JSON", http.StatusBadRequest},
	{nil, typeBadRequest, "Bad request", http.StatusBadRequest},
	{nil, typeForbidden, "Forbidden", http.StatusForbidden},
	{nil, typeNotFound, "Not found", http.StatusNotFound},
	{nil, typeWorkflowUnknown, "Workflow not found", http.StatusNotFound},
	{nil, typeMethod, "Method not allowed", http.StatusMethodNotAllowed},
}

// problemOf classifies err. ok is false for an error Flux does not
// classify: a storage failure, answered 503 without its text.
func problemOf(err error) (p *Problem, ok bool) {
	if errors.As(err, &p) {
		return p, true
	}
	for _, k := range problemKinds {
		if k.err != nil && errors.Is(err, k.err) {
			return &Problem{Type: k.typ, Title: k.title, Status: k.status, Detail: err.Error()}, true
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Problem{Type: typeUnavailable, Title: "Unavailable", Status: http.StatusServiceUnavailable,
			Detail: "the engine did not answer in time"}, true
	}
	return &Problem{Type: typeUnavailable, Title: "Unavailable", Status: http.StatusServiceUnavailable,
		Detail: "the engine or its storage failed; the server's log has the error"}, false
}

// newProblem returns a problem of type typ, titled from problemKinds.
func newProblem(typ string, status int, detail string) *Problem {
	p := &Problem{Type: typ, Status: status, Detail: detail, Title: http.StatusText(status)}
	for _, k := range problemKinds {
		if k.typ == typ {
			p.Title = k.title
		}
	}
	return p
}

// writeProblem writes p as application/problem+json.
func writeProblem(w http.ResponseWriter, p *Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
