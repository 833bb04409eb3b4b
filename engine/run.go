package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/zmqpipeline/zmqpipeline/transport"
	// The in-process transport is always available; see the package doc.
	_ "github.com/zmqpipeline/zmqpipeline/transport/inproc"
)

// Endpoints says where the roles meet. Every component of one pipeline is
// given the same Endpoints; which transport carries them follows from the
// scheme ("inproc://", "ipc://", "tcp://", or any registered one), unless
// the component was given one (WithTransport).
type Endpoints struct {
	// Distributor is bound by the distributor; workers, the collector and
	// the metadata source dial it.
	Distributor string
	// Collector is bound by the collector; workers dial it with their
	// results.
	Collector string
}

// InProcess returns inproc endpoints whose names start with name, for a
// pipeline that runs in one process.
func InProcess(name string) Endpoints {
	return Endpoints{Distributor: "inproc://" + name + "/distributor", Collector: "inproc://" + name + "/collector"}
}

// distinct refuses endpoints where the distributor and the collector would
// bind one address: each role binds its own. An endpoint that leaves the
// port to the system ("tcp://host:0") names a different address each time
// it is bound, so two of them are not the same.
func (e Endpoints) distinct(component string) error {
	systemPicks := strings.HasSuffix(e.Distributor, ":0") || strings.HasSuffix(e.Distributor, ":*")
	if e.Distributor != "" && e.Distributor == e.Collector && !systemPicks {
		return invalid("%s: the distributor and collector endpoints are both %q: each binds its own", component, e.Distributor)
	}
	return nil
}

// resolve returns the endpoint and the transport that serves it: the
// component's own, or the one registered for the scheme.
func (s *commonSettings) resolve(endpoint string) (transport.Endpoint, transport.Transport, error) {
	if s.transport != nil {
		ep, err := transport.ParseEndpoint(endpoint)
		return ep, s.transport, err
	}
	return transport.Resolve(endpoint)
}

// checkEndpoint validates an endpoint the component binds or dials, so
// that a bad one is an error from the constructor.
func (s *commonSettings) checkEndpoint(component, which, endpoint string, use transport.Use) error {
	if endpoint == "" {
		return invalid("%s: empty %s endpoint", component, which)
	}
	ep, t, err := s.resolve(endpoint)
	if err == nil {
		err = transport.Check(t, ep, use)
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %s endpoint: %w", ErrInvalidConfig, component, which, err)
	}
	return nil
}

func (s *commonSettings) listen(ctx context.Context, endpoint string) (transport.Listener, error) {
	ep, t, err := s.resolve(endpoint)
	if err != nil {
		return nil, err
	}
	return t.Listen(ctx, ep)
}

func (s *commonSettings) dial(ctx context.Context, endpoint string) (transport.Conn, error) {
	ep, t, err := s.resolve(endpoint)
	if err != nil {
		return nil, err
	}
	return t.Dial(ctx, ep)
}

// Runner is a component: Distributor, Worker, Collector, MetadataSource.
type Runner interface {
	// Run blocks until the component's part of the run is done (nil), ctx
	// ends (ctx.Err()) or it fails (a wrapped error).
	Run(ctx context.Context) error
}

// errRunComplete stops, inside RunAll, the components still waiting to
// join a run that a distributor already completed.
var errRunComplete = errors.New("engine: the run completed")

// RunAll runs every component in its own goroutine of this process and
// waits for all of them, whatever their transports: the whole pipeline
// over inproc endpoints, or the roles a process takes in a distributed one.
// The first failure cancels the others and is returned; nil means every
// component completed. When a Distributor among them completes the run,
// any component still waiting to join it (a worker that connected too late
// to get an item, say) is stopped and counts as done.
func RunAll(ctx context.Context, components ...Runner) error {
	for i, c := range components {
		if c == nil {
			return invalid("RunAll: component %d is nil", i)
		}
		if v := reflect.ValueOf(c); v.Kind() == reflect.Pointer && v.IsNil() {
			return invalid("RunAll: component %d is a nil %T", i, c)
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for _, c := range components {
		wg.Go(func() {
			err := c.Run(ctx)
			if err == nil {
				if _, ok := c.(*Distributor); ok {
					cancel(errRunComplete)
				}
				return
			}
			if errors.Is(err, context.Canceled) && errors.Is(context.Cause(ctx), errRunComplete) {
				return
			}
			// Recorded before cancel, so the context errors the cancel
			// causes in the other components never come first.
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
			cancel(err)
		})
	}
	wg.Wait()
	return firstErr
}
