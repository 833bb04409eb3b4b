package engine

import (
	"sync"
	"sync/atomic"
)

// signal is closed once, when something has happened.
type signal struct {
	once sync.Once
	ch   chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }

func (s *signal) fire() { s.once.Do(func() { close(s.ch) }) }

// binding is where a listening component is bound, once it is.
type binding struct {
	bound *signal
	addr  atomic.Pointer[string]
}

func newBinding() binding { return binding{bound: newSignal()} }

// set records the bound endpoint, then signals it.
func (b *binding) set(addr string) {
	b.addr.Store(&addr)
	b.bound.fire()
}

// endpoint returns the bound endpoint, or "" before set.
func (b *binding) endpoint() string {
	if a := b.addr.Load(); a != nil {
		return *a
	}
	return ""
}
