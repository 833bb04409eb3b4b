package zmqtransport_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/zmqpipeline/zmqpipeline/transport"
	"github.com/zmqpipeline/zmqpipeline/transport/zmqtransport"
)

// TestFullInboxLosesNothing fills a listener's tiny inbox: every message
// the sender queued meanwhile arrives, in order, once the receiver reads,
// since each read makes room and wakes the socket's owner.
func TestFullInboxLosesNothing(t *testing.T) {
	for name, newEndpoint := range map[string]func(testing.TB) string{"ipc": ipcEndpoint, "tcp": tcpEndpoint} {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			tr := zmqtransport.New(zmqtransport.Options{Buffer: 4})
			ep, err := transport.ParseEndpoint(newEndpoint(t))
			require.NoError(t, err)
			l, err := tr.Listen(ctx, ep)
			require.NoError(t, err)
			defer l.Close()
			c, err := tr.Dial(ctx, ep)
			require.NoError(t, err)
			defer c.Close()

			const n = 5000
			for i := range uint64(n) { // all sent before anything is read
				require.NoError(t, c.Send(ctx, transport.Envelope{Kind: transport.KindWork, ItemID: i}))
			}
			var from transport.PeerID
			for i := range uint64(n) {
				p, env, err := l.Recv(ctx)
				require.NoError(t, err)
				require.Equal(t, i, env.ItemID)
				from = p
			}
			// And the other way, into the conn's inbox.
			for i := range uint64(n) {
				require.NoError(t, l.Send(ctx, from, transport.Envelope{Kind: transport.KindAck, ItemID: i}))
			}
			for i := range uint64(n) {
				env, err := c.Recv(ctx)
				require.NoError(t, err)
				require.Equal(t, i, env.ItemID)
			}
		})
	}
}
