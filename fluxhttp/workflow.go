package fluxhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/flux-go/flux"
)

// Route is a workflow that a [Handler] serves, made by [Workflow]: it
// holds the typed calls of package flux for it, so that a request naming
// the workflow starts, waits for, resumes or retries its runs.
type Route struct {
	name   string
	err    error
	start  func(ctx context.Context, e *flux.Engine, body []byte, strict bool, key string) (string, error)
	wait   func(ctx context.Context, e *flux.Engine, id string) error
	resume func(ctx context.Context, e *flux.Engine, id string) error
	retry  func(ctx context.Context, e *flux.Engine, id, step string, force bool) error
}

// Workflow returns the route of w: its runs are started from the JSON of
// an In, decoded as [Config.AllowUnknownFields] says.
func Workflow[In, Data any](w *flux.Workflow[In, Data]) Route {
	return Route{
		name: w.Name(),
		err:  w.Err(),
		start: func(ctx context.Context, e *flux.Engine, body []byte, strict bool, key string) (string, error) {
			var in In
			if err := decodeInput(body, &in, strict); err != nil {
				return "", err
			}
			var opts []flux.RunOption
			if key != "" {
				opts = append(opts, flux.RunID(key))
			}
			return flux.Start(ctx, e, w, in, opts...)
		},
		wait: func(ctx context.Context, e *flux.Engine, id string) error {
			_, err := flux.Wait(ctx, e, w, id)
			return err
		},
		resume: func(ctx context.Context, e *flux.Engine, id string) error {
			_, err := flux.Resume(ctx, e, w, id)
			return err
		},
		retry: func(ctx context.Context, e *flux.Engine, id, step string, force bool) error {
			var opts []flux.RetryOption
			if force {
				opts = append(opts, flux.Force())
			}
			_, err := flux.RetryStep(ctx, e, w, id, step, opts...)
			return err
		},
	}
}

// decodeInput decodes body, one JSON value, into v. A mistake is a 400
// Problem naming the field or the offset at fault.
func decodeInput(body []byte, v any, strict bool) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return &Problem{Type: typeBadJSON, Title: "Bad JSON", Status: http.StatusBadRequest,
			Detail: "the body is empty: send the workflow's input as JSON"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			return &Problem{Type: typeBadJSON, Title: "Bad JSON", Status: http.StatusBadRequest,
				Detail: fmt.Sprintf("unexpected data after the JSON value at offset %d", dec.InputOffset()),
				Offset: dec.InputOffset()}
		}
		return nil
	}
	p := &Problem{Type: typeBadJSON, Title: "Bad JSON", Status: http.StatusBadRequest, Detail: err.Error()}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		p.Offset = syn.Offset
		p.Detail = fmt.Sprintf("invalid JSON at offset %d: %v", syn.Offset, syn)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		p.Offset = int64(len(body))
		p.Detail = "the JSON ends too early"
	case errors.As(err, &typ):
		p.Type, p.Title = typeInvalidInput, "Invalid input"
		p.Field, p.Offset = typ.Field, typ.Offset
		if p.Field == "" {
			p.Detail = fmt.Sprintf("the input must be a JSON %s, not %s", jsonKind(typ.Type.String()), typ.Value)
		} else {
			p.Detail = fmt.Sprintf("field %q: %s is not valid for a Go %s", typ.Field, typ.Value, typ.Type)
		}
	default:
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			p.Type, p.Title = typeInvalidInput, "Invalid input"
			p.Field = strings.Trim(name, `"`)
			p.Detail = fmt.Sprintf("unknown field %s", name)
		} else {
			// An UnmarshalJSON of the input type refused it.
			p.Type, p.Title = typeInvalidInput, "Invalid input"
		}
	}
	return p
}

// jsonKind names a Go type the way a JSON user would.
func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "array"
	case strings.HasPrefix(goType, "map[") || strings.Contains(goType, "."):
		return "object"
	}
	return "value of Go type " + goType
}
