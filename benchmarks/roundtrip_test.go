package benchmarks

import (
	"context"
	"testing"

	zmq "github.com/pebbe/zmq4"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// BenchmarkRoundTrip measures the transport's latency: one envelope from a
// Conn to a Listener and back, one at a time; ns/op is the round trip.
// BenchmarkRawRoundTrip is its floor.
func BenchmarkRoundTrip(b *testing.B) {
	for _, tr := range []string{"inproc", "ipc", "tcp"} {
		b.Run("transport="+tr, func(b *testing.B) {
			ctx := context.Background()
			ep := endpoints(b, tr).Distributor
			l, err := transport.Listen(ctx, ep)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			c, err := transport.Dial(ctx, ep)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			echoed := make(chan struct{})
			go func() {
				defer close(echoed)
				for {
					from, env, err := l.Recv(ctx)
					if err != nil {
						return
					}
					if err := l.Send(ctx, from, env); err != nil {
						return
					}
				}
			}()
			env := transport.Envelope{Kind: transport.KindWork, TaskType: "noop", ItemID: 1, Payload: []byte{0xc0}}
			b.ResetTimer()
			for range b.N {
				if err := c.Send(ctx, env); err != nil {
					b.Fatal(err)
				}
				if _, err := c.Recv(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			_ = l.Close()
			<-echoed
		})
	}
}

// BenchmarkRawRoundTrip is BenchmarkRoundTrip with bare libzmq: a DEALER
// and a ROUTER in blocking calls, messages of the same size.
func BenchmarkRawRoundTrip(b *testing.B) {
	size := (&transport.Envelope{Kind: transport.KindWork, TaskType: "noop", ItemID: 1, Payload: []byte{0xc0}}).EncodedLen()
	for _, tr := range []string{"ipc", "tcp"} {
		b.Run("transport="+tr, func(b *testing.B) {
			ep := endpoints(b, tr).Distributor
			zctx, err := zmq.NewContext()
			if err != nil {
				b.Fatal(err)
			}
			router, _ := zctx.NewSocket(zmq.ROUTER)
			dealer, _ := zctx.NewSocket(zmq.DEALER)
			if err := router.Bind(ep); err != nil {
				b.Fatal(err)
			}
			if err := dealer.Connect(ep); err != nil {
				b.Fatal(err)
			}
			echoed := make(chan error, 1)
			go func() {
				for range b.N {
					m, err := router.RecvMessageBytes(0)
					if err == nil {
						_, err = router.SendMessage(m)
					}
					if err != nil {
						echoed <- err
						return
					}
				}
				echoed <- nil
			}()
			msg := make([]byte, size)
			b.ResetTimer()
			for range b.N {
				if _, err := dealer.SendBytes(msg, 0); err != nil {
					b.Fatal(err)
				}
				if _, err := dealer.RecvBytes(0); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if err := <-echoed; err != nil {
				b.Fatal(err)
			}
			_ = router.SetLinger(0)
			_ = dealer.SetLinger(0)
			_ = router.Close()
			_ = dealer.Close()
			_ = zctx.Term()
		})
	}
}
