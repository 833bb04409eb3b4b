# The README's two commands: `make demo` and `make test`. Both start from a
# fresh Debian machine with Go and do their own set-up.

GO ?= go

.PHONY: demo test deps vet race nocgo purity plotvet bench plot seedtable

# The main demo: the seed's Example 2 with two workers, in one process.
demo: deps
	$(GO) run ./examples/singlethread -n 1000 -workers 2

test: deps vet purity nocgo plotvet race

# libzmq for the ZeroMQ transport, from Debian's libzmq3-dev when
# pkg-config cannot find it, and Python's zmq and msgpack modules for the
# test of the Python worker (examples/python), from Debian's python3-zmq and
# python3-msgpack when no python3 has them (as root, or through sudo).
deps:
	@need=; \
	pkg-config --exists libzmq 2>/dev/null || need="libzmq3-dev pkg-config"; \
	python3 -c 'import zmq, msgpack' 2>/dev/null || /usr/bin/python3 -c 'import zmq, msgpack' 2>/dev/null || \
		need="$$need python3-zmq python3-msgpack"; \
	if [ -n "$$need" ]; then \
		echo "installing: $$need"; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y $$need; \
	fi
	$(GO) mod download

vet:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi

# engine and dag never depend on ZeroMQ (or on cgo).
purity:
	@if $(GO) list -deps ./engine/... ./dag/... | grep -q zmq4; then \
		echo "engine or dag imports zmq4"; exit 1; fi

# A program that uses inproc endpoints alone builds without cgo.
nocgo:
	CGO_ENABLED=0 $(GO) build ./engine/... ./dag/... ./transport/... ./examples/...

race:
	$(GO) test -race -count=1 ./...

# The plotting command is a module of its own (its library is no
# dependency of the engine); this checks that it still builds.
plotvet:
	cd benchmarks/plot && $(GO) vet .

# The performance benchmarks, every figure beside its ceiling: writes
# benchmarks/results/{bench.txt,results.json,results.csv,table.md}. A few
# minutes; QUICK=1 for a smoke run.
bench:
	$(GO) run ./benchmarks/runner $(if $(QUICK),-quick)

# README's figure, from benchmarks/results/results.csv.
plot:
	cd benchmarks/plot && $(GO) run . -in ../results/results.csv -out ../performance.png

# The seed's tables; TRANSPORT=ipc or tcp runs every role in its own process.
TRANSPORT ?= inproc
seedtable:
	$(GO) run ./benchmarks/seedtable -n 1000 -repeat 3 -transport $(TRANSPORT)
