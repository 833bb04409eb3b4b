package pipetransport_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/engine/enginetest"
	"github.com/zmqpipeline/zmqpipeline/transport"
	"github.com/zmqpipeline/zmqpipeline/transport/internal/pipetransport"
	"github.com/zmqpipeline/zmqpipeline/transport/transporttest"
)

func TestMain(m *testing.M) {
	// The engine reaches this transport the way it reaches any other: by
	// the scheme in an endpoint string.
	transport.Register("pipe", pipetransport.New("pipe", 0))
	goleak.VerifyTestMain(m)
}

var seq atomic.Int64

func name(t testing.TB) string { return fmt.Sprintf("t%d", seq.Add(1)) }

func TestConformance(t *testing.T) {
	const limit = 1 << 20
	tr := pipetransport.New("pipe", limit)
	transporttest.Run(t, transporttest.Suite{
		Transport:   tr,
		NewEndpoint: func(t testing.TB) string { return "pipe://" + name(t) },
		Features:    transporttest.Features{MaxMessageSize: limit},
	})
}

// TestEngineSuite runs the engine's whole behavioural suite over a
// transport registered by this test, which engine/ has never heard of.
func TestEngineSuite(t *testing.T) {
	enginetest.Run(t, enginetest.Suite{NewEndpoints: func(t testing.TB) engine.Endpoints {
		n := name(t)
		return engine.Endpoints{Distributor: "pipe://" + n + "/distributor", Collector: "pipe://" + n + "/collector"}
	}})
}

func TestCheckEndpoint(t *testing.T) {
	tr := pipetransport.New("pipe", 0)
	for endpoint, reason := range map[string]string{
		"pipe://":                            "1 to 64",
		"pipe://has space":                   "character",
		"other://x":                          "pipe:// endpoints only",
		"pipe://" + string(make([]byte, 65)): "1 to 64",
	} {
		ep, err := transport.ParseEndpoint(endpoint)
		require.NoError(t, err)
		err = tr.CheckEndpoint(ep, transport.ForDial)
		require.ErrorIs(t, err, transport.ErrInvalidEndpoint, endpoint)
		assert.Contains(t, err.Error(), reason)
	}
}

// TestTransportGivenToTheComponents runs a pipeline with metadata over a
// transport that is not registered at all: every component is handed it.
func TestTransportGivenToTheComponents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr := pipetransport.New("private", 0)
	ep := engine.Endpoints{Distributor: "private://d", Collector: "private://c"}
	_, err := engine.NewDistributor(ep, []engine.TaskSpec{{Type: "t", Task: engine.Items(1, nil)}})
	require.ErrorIs(t, err, transport.ErrNoTransport, "the scheme is not registered")

	use := engine.WithTransport(tr)
	const items = 30
	d, err := engine.NewDistributor(ep, []engine.TaskSpec{{Type: "t", Task: engine.Items(items, func(i int) (any, error) { return i, nil })}},
		use, engine.WithMetadata())
	require.NoError(t, err)
	src, err := engine.NewMetadataSource(ep, func(context.Context) (engine.Metadata, error) { return engine.Metadata{"k": 3}, nil }, use)
	require.NoError(t, err)
	var mu sync.Mutex
	sum := int64(0)
	c, err := engine.NewCollector(ep, engine.ResultFunc(func(ctx context.Context, res *engine.Result) (any, error) {
		var v int64
		err := res.Decode(&v)
		mu.Lock()
		sum += v
		mu.Unlock()
		return nil, err
	}), use)
	require.NoError(t, err)
	var k atomic.Int64
	w, err := engine.NewWorker(ep, "t", engine.HandlerFunc(func(ctx context.Context, job *engine.Job) (any, error) {
		var i int64
		err := job.Decode(&i)
		return i * k.Load(), err
	}), use, engine.WithConcurrency(3), engine.WithWorkerInit(func(ctx context.Context, md engine.Metadata) error {
		k.Store(md["k"].(int64))
		return nil
	}))
	require.NoError(t, err)
	require.NoError(t, engine.RunAll(ctx, d, src, c, w))
	assert.Equal(t, int64(3*items*(items-1)/2), sum)
	assert.Equal(t, int64(items), w.Executed())
}
