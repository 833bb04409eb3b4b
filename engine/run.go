package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/zmqpipeline/zmqpipeline/transport"
	// The in-process transport is always available; see the package doc.
	_ "github.com/zmqpipeline/zmqpipeline/transport/inproc"
)

// Endpoints says where the roles meet. Every component of one pipeline is
// given the same Endpoints; which transport carries them follows from the
// scheme alone ("inproc://", "ipc://", "tcp://").
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

// check validates the endpoints a component uses and that a transport serves
// their schemes.
func (e Endpoints) check(component string, distributor, collector bool) error {
	for _, c := range []struct {
		use      bool
		name, ep string
	}{{distributor, "distributor", e.Distributor}, {collector, "collector", e.Collector}} {
		if !c.use {
			continue
		}
		if c.ep == "" {
			return invalid("%s: empty %s endpoint", component, c.name)
		}
		if _, _, err := transport.ForEndpoint(c.ep); err != nil {
			return fmt.Errorf("%w: %s: %s endpoint: %w", ErrInvalidConfig, component, c.name, err)
		}
	}
	return nil
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

// RunAll runs every component in its own goroutine and waits for all of
// them, for the in-process case. The first failure cancels the others and is
// returned; nil means every component completed. When a Distributor among
// them completes the run, any component still waiting to join it (a worker
// that connected too late to get an item, say) is stopped and counts as
// done.
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
