package zmqtransport_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// TestCloseNeverHangs opens and closes a listener and a conn many times,
// closing both at once with messages in flight: the pattern that made
// zmq_ctx_term hang when each had its own context.
func TestCloseNeverHangs(t *testing.T) {
	for i := range 200 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ep := tcpEndpoint(t)
		l, err := transport.Listen(ctx, ep)
		if err != nil {
			t.Fatal(err)
		}
		c, err := transport.Dial(ctx, ep)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Send(ctx, transport.Envelope{Kind: transport.KindHello})
		from, _, err := l.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() { _ = l.Send(ctx, from, transport.Envelope{Kind: transport.KindEnd}); _ = l.Close() })
		wg.Go(func() { _ = c.Send(ctx, transport.Envelope{Kind: transport.KindBye}); _ = c.Close() })
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("iteration %d: Close hung", i)
		}
		cancel()
	}
}
