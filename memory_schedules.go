package flux

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/flux-go/flux/driver"
)

var _ driver.Scheduler = (*MemoryStorage)(nil)

// copySchedule returns a copy of s that shares no bytes with it.
func copySchedule(s driver.Schedule) driver.Schedule {
	s.Input = cloneBytes(s.Input)
	return s
}

// SaveSchedule implements [driver.Scheduler].
func (m *MemoryStorage) SaveSchedule(_ context.Context, p driver.SaveScheduleParams) error {
	s := copySchedule(p.Schedule)
	if s.Name == "" {
		return fmt.Errorf("flux: saving a schedule of workflow %q: it has no name; give it one", s.Workflow)
	}
	if m.isClosed() {
		return errMemoryClosed
	}
	m.smu.Lock()
	defer m.smu.Unlock()
	if old, ok := m.schedules[s.Name]; ok {
		s.Paused, s.LastTick = old.Paused, old.LastTick
	} else {
		s.LastTick = time.Time{}
	}
	if m.schedules == nil {
		m.schedules = make(map[string]driver.Schedule)
	}
	m.schedules[s.Name] = s
	return nil
}

// Schedules implements [driver.Scheduler].
func (m *MemoryStorage) Schedules(context.Context) ([]driver.Schedule, error) {
	if m.isClosed() {
		return nil, errMemoryClosed
	}
	m.smu.Lock()
	out := make([]driver.Schedule, 0, len(m.schedules))
	for _, s := range m.schedules {
		out = append(out, copySchedule(s))
	}
	m.smu.Unlock()
	slices.SortFunc(out, func(a, b driver.Schedule) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// SetSchedule implements [driver.Scheduler].
func (m *MemoryStorage) SetSchedule(_ context.Context, p driver.SetScheduleParams) error {
	if m.isClosed() {
		return errMemoryClosed
	}
	m.smu.Lock()
	defer m.smu.Unlock()
	s, ok := m.schedules[p.Name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrScheduleNotFound, p.Name)
	}
	if p.Paused != nil {
		s.Paused = *p.Paused
	}
	if p.LastTick.After(s.LastTick) {
		s.LastTick = p.LastTick
	}
	s.UpdatedAt = p.At
	m.schedules[p.Name] = s
	return nil
}

// DeleteSchedule implements [driver.Scheduler].
func (m *MemoryStorage) DeleteSchedule(_ context.Context, name string) error {
	if m.isClosed() {
		return errMemoryClosed
	}
	m.smu.Lock()
	defer m.smu.Unlock()
	if _, ok := m.schedules[name]; !ok {
		return fmt.Errorf("%w: %q", ErrScheduleNotFound, name)
	}
	delete(m.schedules, name)
	return nil
}
