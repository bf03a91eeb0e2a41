package flux

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/flux-go/flux/driver"
)

// Changes implements [driver.Store]: positions are the numbers of the
// store's writes.
func (m *MemoryStorage) Changes(_ context.Context, p driver.ChangesParams) (*driver.ChangesPage, error) {
	var after uint64
	if p.After != "" {
		v, err := strconv.ParseUint(p.After, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("flux: memory storage: change position %q is not one of this store's: pass the Position a Changes returned, or \"\"", p.After)
		}
		after = v
	}
	// Every write numbered up to upTo is visible once no write holds
	// changeMu.
	m.changeMu.Lock()
	upTo := m.changes.Load()
	m.changeMu.Unlock()
	page := &driver.ChangesPage{Runs: []*Run{}, Position: strconv.FormatUint(upTo, 10)}
	if p.After == "" || after >= upTo {
		return page, nil
	}
	runs, err := m.all()
	if err != nil {
		return nil, err
	}
	type hit struct {
		r       *memRun
		changed uint64
	}
	var hits []hit
	for _, r := range runs {
		r.mu.Lock()
		if r.changed > after && r.changed <= upTo {
			hits = append(hits, hit{r, r.changed})
		}
		r.mu.Unlock()
	}
	slices.SortFunc(hits, func(a, b hit) int { return cmp.Compare(a.changed, b.changed) })
	if limit := p.ChangesLimit(); len(hits) > limit {
		hits = hits[:limit]
		page.Position = strconv.FormatUint(hits[limit-1].changed, 10)
	}
	for _, h := range hits {
		h.r.mu.Lock()
		c := h.r.head.Clone()
		c.Data = nil
		h.r.mu.Unlock()
		page.Runs = append(page.Runs, c)
	}
	return page, nil
}
