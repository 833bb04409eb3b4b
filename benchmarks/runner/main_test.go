package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const sample = `goos: linux
BenchmarkNoopItems/transport=ipc/workers=2/goroutines=1/prefetch=-1-2 	  500000	      1845 ns/op	   1388732 ceiling-items/s	    541936 items/s	        39.02 pct-of-ceiling	     859 B/op	       0 allocs/op
BenchmarkNoopItems/transport=ipc/workers=2/goroutines=1/prefetch=-1-2 	  500000	      1900 ns/op	   1400000 ceiling-items/s	    520000 items/s	        37.14 pct-of-ceiling	     860 B/op	       0 allocs/op
BenchmarkNoopItems/transport=ipc/workers=2/goroutines=1/prefetch=-1-2 	  500000	      1700 ns/op	   1300000 ceiling-items/s	    560000 items/s	        43.08 pct-of-ceiling	     850 B/op	       0 allocs/op
BenchmarkOverhead/transport=inproc/item=1ms/work=cpu/workers=2/goroutines=1-2 	    1000	    506433 ns/op	         1.090 added-points	         1.269 overhead-pct	         0.1788 plain-overhead-pct
PASS
ok  	github.com/zmqpipeline/zmqpipeline/benchmarks	9.308s
`

func TestParseAndMedians(t *testing.T) {
	results, err := parse(strings.NewReader(sample))
	require.NoError(t, err)
	require.Len(t, results, 4)
	r := results[0]
	assert.Equal(t, "BenchmarkNoopItems/transport=ipc/workers=2/goroutines=1/prefetch=-1", r.Name, "the -GOMAXPROCS suffix is not part of the name")
	assert.Equal(t, map[string]string{"benchmark": "NoopItems", "transport": "ipc", "workers": "2", "goroutines": "1", "prefetch": "-1"}, r.Params)
	assert.Equal(t, 500000, r.N)
	assert.Equal(t, 541936.0, r.Metrics["items/s"])
	assert.Equal(t, 0.0, r.Metrics["allocs/op"])

	med := medians(results)
	require.Len(t, med, 2)
	assert.Equal(t, 541936.0, med[0].Metrics["items/s"], "the median run's figure")
	assert.Equal(t, 1845.0, med[0].Metrics["ns/op"])
	assert.Equal(t, "1ms", med[1].Params["item"])
	assert.Equal(t, 1.090, med[1].Metrics["added-points"])
}

func TestParseRefusesAGarbledFigure(t *testing.T) {
	_, err := parse(strings.NewReader("BenchmarkX-2 10 12x ns/op\n"))
	assert.ErrorContains(t, err, "BenchmarkX")
}
