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
			b.ResetTimer()
			for range b.N {
				if err := c.Send(ctx, noopWork); err != nil {
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
	size := noopWork.EncodedLen()
	for _, tr := range []string{"ipc", "tcp"} {
		b.Run("transport="+tr, func(b *testing.B) {
			router, dealer, closeAll := rawPair(b, tr, zmq.ROUTER, zmq.DEALER)
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
			closeAll()
		})
	}
}
