package fluxotel

import "github.com/flux-go/flux"

// Tee returns a sink that passes each event to every non-nil sink in order,
// for instance an [Instrumentation] and the NDJSON trace file. The sinks
// share each event and must not modify it. With no sinks it drops events.
func Tee(sinks ...flux.TraceSink) flux.TraceSink {
	var t tee
	for _, s := range sinks {
		switch s := s.(type) {
		case nil:
		case tee:
			t = append(t, s...)
		default:
			t = append(t, s)
		}
	}
	if len(t) == 1 {
		return t[0]
	}
	return t
}

type tee []flux.TraceSink

func (t tee) Emit(ev flux.TraceEvent) {
	for _, s := range t {
		s.Emit(ev)
	}
}

// RunCorrupt passes c to the sinks that are [flux.CorruptReporter]s.
func (t tee) RunCorrupt(c flux.CorruptRun) {
	for _, s := range t {
		if r, ok := s.(flux.CorruptReporter); ok {
			r.RunCorrupt(c)
		}
	}
}
