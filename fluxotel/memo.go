package fluxotel

import (
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// maxMemo bounds the memo. Its keys come from workflow definitions, so a
// process has few; events with ever new names are still recorded, at the
// cost of computing their names and attributes each time.
const maxMemo = 4096

// memo keeps span names and metric attribute sets, which would otherwise
// be allocated for every event.
type memo struct {
	mu sync.RWMutex
	m  map[memoKey]memoValue
}

// memoKey is a run, a node, or a node's attempts with one outcome.
type memoKey struct {
	kind                    memoKind
	workflow, step, outcome string
}

type memoKind uint8

const (
	memoRun memoKind = iota
	memoStep
	memoOutcome
)

type memoValue struct {
	spanName    string
	metricAttrs metric.MeasurementOption
}

func (m *memo) get(k memoKey) memoValue {
	m.mu.RLock()
	v, ok := m.m[k]
	m.mu.RUnlock()
	if ok {
		return v
	}
	switch k.kind {
	case memoRun:
		v = memoValue{"flux.run " + k.workflow, metric.WithAttributeSet(attribute.NewSet(AttrWorkflow.String(k.workflow)))}
	case memoStep:
		v = memoValue{"flux.step " + k.step, metric.WithAttributeSet(attribute.NewSet(
			AttrWorkflow.String(k.workflow), AttrStep.String(k.step)))}
	default:
		v = memoValue{"", metric.WithAttributeSet(attribute.NewSet(
			AttrWorkflow.String(k.workflow), AttrStep.String(k.step), AttrOutcome.String(k.outcome)))}
	}
	m.mu.Lock()
	if m.m == nil {
		m.m = make(map[memoKey]memoValue)
	}
	if len(m.m) < maxMemo {
		m.m[k] = v
	}
	m.mu.Unlock()
	return v
}
