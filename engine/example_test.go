package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/zmqpipeline/zmqpipeline/engine"
)

// A whole pipeline in one process: a task of five numbers, a worker that
// squares them, and a collector that adds the squares up.
func ExampleRunAll() {
	ep := engine.InProcess("example-squares") // or ipc:// and tcp:// endpoints, one role per process

	dist, err := engine.NewDistributor(ep, []engine.TaskSpec{{
		Type: "square",
		Task: engine.Items(5, func(i int) (any, error) { return i + 1, nil }),
	}})
	if err != nil {
		panic(err)
	}
	worker, err := engine.NewWorker(ep, "square", engine.HandlerFunc(func(ctx context.Context, job *engine.Job) (any, error) {
		var n int
		if err := job.Decode(&n); err != nil {
			return nil, err
		}
		return n * n, nil
	}))
	if err != nil {
		panic(err)
	}
	sum := 0
	collector, err := engine.NewCollector(ep,
		engine.ResultFunc(func(ctx context.Context, res *engine.Result) (any, error) {
			var sq int
			err := res.Decode(&sq)
			sum += sq
			return nil, err
		}),
		engine.WithFinished(func(ctx context.Context, s engine.Summary) {
			fmt.Printf("%d results, sum of squares %d\n", s.Results, sum)
		}),
	)
	if err != nil {
		panic(err)
	}
	if err := engine.RunAll(context.Background(), dist, worker, collector); err != nil {
		panic(err)
	}
	// Output: 5 results, sum of squares 55
}

// Task types that depend on others get no item before every item of their
// dependencies was acknowledged, and a metadata source can hand a map to
// everyone before the start.
func ExampleNewDistributor_dependenciesAndMetadata() {
	ep := engine.InProcess("example-deps")
	dist, err := engine.NewDistributor(ep, []engine.TaskSpec{
		{Type: "load", Task: engine.Items(3, func(i int) (any, error) { return i, nil })},
		{Type: "report", Task: engine.Items(1, func(int) (any, error) { return nil, nil }), DependsOn: []string{"load"}},
	}, engine.WithMetadata())
	if err != nil {
		panic(err)
	}
	var prefix string
	noop := engine.HandlerFunc(func(ctx context.Context, job *engine.Job) (any, error) { return nil, nil })
	load, _ := engine.NewWorker(ep, "load", noop)
	report, _ := engine.NewWorker(ep, "report", noop)
	collector, _ := engine.NewCollector(ep,
		engine.ResultFunc(func(ctx context.Context, res *engine.Result) (any, error) {
			fmt.Println(prefix, res.TaskType)
			return nil, nil
		}),
		engine.WithCollectorInit(func(ctx context.Context, md engine.Metadata) error {
			prefix = md["prefix"].(string)
			return nil
		}),
	)
	source, _ := engine.NewMetadataSource(ep, func(ctx context.Context) (engine.Metadata, error) {
		return engine.Metadata{"prefix": "done:"}, nil
	})
	if err := engine.RunAll(context.Background(), dist, load, report, collector, source); err != nil {
		panic(err)
	}
	// Output:
	// done: load
	// done: load
	// done: load
	// done: report
}

// One hook sees every ACK of every task type: a run's progress in one
// place, without wrapping each task.
func ExampleWithAckHandler() {
	ep := engine.InProcess("example-acks")
	done := map[string]int{}
	progress := engine.AckHandlerFunc(func(ctx context.Context, ack *engine.Ack) error {
		done[ack.TaskType]++ // the distributor's goroutine: no lock needed
		return nil
	})
	dist, err := engine.NewDistributor(ep, []engine.TaskSpec{
		{Type: "fetch", Task: engine.Items(4, func(i int) (any, error) { return i, nil })},
		{Type: "index", Task: engine.Items(2, func(i int) (any, error) { return i, nil }), DependsOn: []string{"fetch"}},
	}, engine.WithAckHandler(progress))
	if err != nil {
		panic(err)
	}
	noop := engine.HandlerFunc(func(ctx context.Context, job *engine.Job) (any, error) { return nil, nil })
	fetch, _ := engine.NewWorker(ep, "fetch", noop)
	index, _ := engine.NewWorker(ep, "index", noop)
	collector, _ := engine.NewCollector(ep, engine.ResultFunc(func(ctx context.Context, res *engine.Result) (any, error) { return nil, nil }))
	if err := engine.RunAll(context.Background(), dist, fetch, index, collector); err != nil {
		panic(err)
	}
	fmt.Println(done)
	// Output: map[fetch:4 index:2]
}

// A component says when it is reachable, and where: peers started after
// Bound dial Addr, which for "tcp://host:0" carries the port the system
// picked.
func ExampleDistributor_Bound() {
	ep := engine.InProcess("example-bound")
	dist, err := engine.NewDistributor(ep, []engine.TaskSpec{{Type: "t", Task: engine.Items(0, nil)}})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dist.Run(ctx) }()
	<-dist.Bound()
	fmt.Println("listening on", dist.Addr())
	cancel()
	fmt.Println(<-done)
	// Output:
	// listening on inproc://example-bound/distributor
	// distributor: stopped before the run completed (0 items done of 0 produced): context canceled
}

// A durable run: the distributor records it in a journal, so that one
// started again on the same file (after a crash, say) resumes it instead
// of starting over, and one started on the journal of a completed run
// hands out nothing. A task must give its items again in the same order
// when asked (as engine.Items does), or implement Resumer.
func ExampleWithJournal() {
	dir, err := os.MkdirTemp("", "example-journal")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	journal := filepath.Join(dir, "run.journal")
	run := func() {
		ep := engine.InProcess("example-journal")
		dist, err := engine.NewDistributor(ep, []engine.TaskSpec{{
			Type: "square", Task: engine.Items(4, func(i int) (any, error) { return i, nil }),
		}}, engine.WithJournal(journal))
		if err != nil {
			panic(err)
		}
		worker, err := engine.NewWorker(ep, "square", engine.HandlerFunc(func(ctx context.Context, job *engine.Job) (any, error) {
			return nil, nil
		}))
		if err != nil {
			panic(err)
		}
		collector, err := engine.NewCollector(ep, engine.ResultFunc(func(context.Context, *engine.Result) (any, error) { return nil, nil }),
			engine.WithFinished(func(ctx context.Context, s engine.Summary) { fmt.Printf("%d results\n", s.Results) }))
		if err != nil {
			panic(err)
		}
		if err := engine.RunAll(context.Background(), dist, worker, collector); err != nil {
			panic(err)
		}
		done, _ := dist.Progress()
		fmt.Printf("this distributor completed %d items\n", done)
	}
	run()
	run() // the journal's run is complete: nothing is handed out again
	// Output:
	// 4 results
	// this distributor completed 4 items
	// this distributor completed 0 items
}

// lines is a task that resumes from a cursor instead of producing its
// first items again: the lines of a file it reads from an offset, say.
type lines struct {
	all  []string
	next int
}

func (l *lines) Next(ctx context.Context) (engine.Item, error) {
	if l.next == len(l.all) {
		return engine.Item{}, engine.ErrNoMoreItems
	}
	l.next++
	return engine.Item{Payload: l.all[l.next-1], Last: l.next == len(l.all)}, nil
}

// Resume continues after the first produced lines: a distributor resuming
// a durable run calls it instead of asking for those lines again.
func (l *lines) Resume(ctx context.Context, produced int) error {
	l.next = produced
	return nil
}

// A task that can seek implements engine.Resumer; the journal then keeps
// its items' payloads, so those in flight at a crash go out again without
// asking the task.
func ExampleResumer() {
	var _ engine.Resumer = &lines{}
	t := &lines{all: []string{"a", "b", "c"}}
	_ = t.Resume(context.Background(), 2) // as a resumed run would
	item, _ := t.Next(context.Background())
	fmt.Println(item.Payload, item.Last)
	// Output: c true
}

// A run's live status: a program (or an operator's endpoint) can call
// Status at any time during the run; here it is read once the run is over.
func ExampleDistributor_Status() {
	ep := engine.InProcess("example-status")
	dist, err := engine.NewDistributor(ep, []engine.TaskSpec{
		{Type: "fetch", Task: engine.Items(20, func(i int) (any, error) { return i, nil })},
		{Type: "index", Task: engine.Items(5, func(i int) (any, error) { return i, nil }), DependsOn: []string{"fetch"}},
	})
	if err != nil {
		panic(err)
	}
	noop := engine.HandlerFunc(func(context.Context, *engine.Job) (any, error) { return nil, nil })
	fetch, err := engine.NewWorker(ep, "fetch", noop)
	if err != nil {
		panic(err)
	}
	index, err := engine.NewWorker(ep, "index", noop)
	if err != nil {
		panic(err)
	}
	collector, err := engine.NewCollector(ep, engine.ResultFunc(func(context.Context, *engine.Result) (any, error) { return nil, nil }))
	if err != nil {
		panic(err)
	}
	if err := engine.RunAll(context.Background(), dist, fetch, index, collector); err != nil {
		panic(err)
	}
	st := dist.Status()
	fmt.Printf("%d of %d items complete, %d in flight\n", st.Completed, st.Total, st.InFlight)
	for _, ts := range st.Tasks {
		fmt.Printf("%s: %s, %d of %d, depends on %v\n", ts.Type, ts.State, ts.Completed, ts.Total, ts.DependsOn)
	}
	// Output:
	// 25 of 25 items complete, 0 in flight
	// fetch: complete, 20 of 20, depends on []
	// index: complete, 5 of 5, depends on [fetch]
}

// QueryStatus asks a distributor how its run is, as an operator's tool in
// another process does (here over the in-process transport; an ipc:// or
// tcp:// endpoint works the same way).
func ExampleQueryStatus() {
	ep := engine.InProcess("example-query-status")
	dist, err := engine.NewDistributor(ep, []engine.TaskSpec{
		{Type: "fetch", Task: engine.Items(10, func(i int) (any, error) { return i, nil })},
	})
	if err != nil {
		panic(err)
	}
	release := make(chan struct{})
	worker, err := engine.NewWorker(ep, "fetch", engine.HandlerFunc(func(ctx context.Context, _ *engine.Job) (any, error) {
		select { // hold the items until the status was read
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	}))
	if err != nil {
		panic(err)
	}
	collector, err := engine.NewCollector(ep, engine.ResultFunc(func(context.Context, *engine.Result) (any, error) { return nil, nil }))
	if err != nil {
		panic(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- engine.RunAll(context.Background(), dist, worker, collector) }()
	<-worker.Joined()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := engine.QueryStatus(ctx, ep.Distributor)
	if err != nil {
		panic(err)
	}
	fmt.Printf("run begun: %v, %d items, %d complete\n", st.Run != "", st.Total, st.Completed)
	fmt.Printf("%s: %s\n", st.Tasks[0].Type, st.Tasks[0].State)
	close(release)
	if err := <-ran; err != nil {
		panic(err)
	}
	// Output:
	// run begun: true, 10 items, 0 complete
	// fetch: running
}
