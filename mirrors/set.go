package mirrors

import (
	"fmt"
	"sort"
)

// Entry is a configured mirror: the id clients select it by, a display name
// and the storage behind it.
type Entry struct {
	ID     string
	Name   string
	Mirror Mirror
	// Redirect, when set, signs URLs that send downloads to the mirror
	// itself; the operator turns it on per mirror.
	Redirect Presigner
}

// Set is the operator's list of mirrors, fixed at start-up.
type Set struct {
	list []Entry
	byID map[string]Entry
}

// NewSet returns a set of the entries; ids must be non-empty and unique.
func NewSet(entries ...Entry) (*Set, error) {
	s := &Set{byID: make(map[string]Entry, len(entries))}
	for _, e := range entries {
		if e.ID == "" {
			return nil, fmt.Errorf("mirror %q: empty id", e.Name)
		}
		if _, dup := s.byID[e.ID]; dup {
			return nil, fmt.Errorf("mirror id %q used twice", e.ID)
		}
		if e.Name == "" {
			e.Name = e.ID
		}
		s.byID[e.ID] = e
		s.list = append(s.list, e)
	}
	sort.SliceStable(s.list, func(i, j int) bool { return lessID(s.list[i].ID, s.list[j].ID) })
	return s, nil
}

// Get returns the mirror with the id.
func (s *Set) Get(id string) (Entry, bool) {
	e, ok := s.byID[id]
	return e, ok
}

// All returns every mirror, ordered by id (numerically where ids are numbers).
func (s *Set) All() []Entry { return s.list }

// lessID orders "2" before "10" and falls back to string order.
func lessID(a, b string) bool {
	if len(a) != len(b) && isDigits(a) && isDigits(b) {
		return len(a) < len(b)
	}
	return a < b
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
