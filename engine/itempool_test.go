package engine

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

func TestItemSlicesAreRecycledEmpty(t *testing.T) {
	s := getItems(3)
	assert.Empty(t, s)
	assert.GreaterOrEqual(t, cap(s), 3)
	s = append(s, transport.Item{ID: 1, Payload: []byte("kept by its new owner")})
	putItems(s)
	assert.Nil(t, s[:1][0].Payload, "a slice given back holds no payload")

	for range 10 { // the pool may drop what it holds at any time: look a few times
		got := getItems(2)
		assert.Empty(t, got)
		for _, it := range got[:cap(got)] {
			assert.Equal(t, transport.Item{}, it, "a recycled slice is clear")
		}
	}
	assert.GreaterOrEqual(t, cap(getItems(10_000)), 10_000, "a larger batch than any slice kept gets its own")
	putItems(make([]transport.Item, maxPooledItems+1)) // too large to keep: left to the garbage collector
	putItems(nil)
}
