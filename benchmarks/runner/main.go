// Command runner runs the performance benchmarks of package benchmarks
// with the item counts they need, and writes what they measured:
//
//	go run ./benchmarks/runner                  # a full run, a few minutes
//	go run ./benchmarks/runner -quick           # a smoke run, under a minute
//
// It writes to -out (benchmarks/results by default):
//
//   - bench.txt: go test's own output, every run, for benchstat
//     (benchstat bench.txt; benchstat -col /transport bench.txt);
//   - results.json: the machine, and every run of every benchmark, its
//     name split into its key=value parts, with every figure;
//   - results.csv: one line per benchmark and figure, the median of the
//     runs, which benchmarks/plot draws;
//   - table.md: the table README's "Performance" shows, every figure
//     beside its ceiling from the same run.
//
// It also runs the singlethread example as three processes over ipc with
// 1,000,000 no-op items and records each one's peak resident memory.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// group is one go test invocation: the benchmarks a pattern selects, run
// with a fixed item count (b.N).
type group struct {
	pattern     string
	items       int // -benchtime Nx
	quickItems  int
	description string
}

var groups = []group{
	{`^BenchmarkNoopItems$`, 500_000, 20_000, "no-op items in one process, over each transport"},
	{`^BenchmarkWorkerProcesses$`, 1_000_000, 20_000, "worker processes over ipc and tcp"},
	{`^BenchmarkScale$`, 300_000, 20_000, "1 to 64 workers in 4 worker processes over ipc"},
	{`^BenchmarkOverhead$/transport=inproc/item=0$`, 1_000_000, 20_000, "items of no work"},
	{`^BenchmarkOverhead$/transport=inproc/item=10us$`, 100_000, 2_000, "items of 10 us"},
	{`^BenchmarkOverhead$/transport=inproc/item=100us$`, 10_000, 500, "items of 100 us"},
	{`^BenchmarkOverhead$/transport=inproc/item=1ms$`, 1_000, 100, "items of 1 ms"},
	{`^BenchmarkOverhead$/transport=inproc/item=10ms$`, 200, 20, "items of 10 ms"},
	{`^BenchmarkStartup$`, 20, 3, "start-up"},
	{`^BenchmarkDurableRun$`, 200_000, 5_000, "durable runs"},
	{`^BenchmarkObserved$`, 1_000_000, 20_000, "a run watched: metrics scraped, status asked, every 100 ms"},
	{`^(BenchmarkRawPushPull|BenchmarkPlainPool)$`, 1_000_000, 20_000, "the ceilings on their own"},
}

func main() {
	out := flag.String("out", filepath.Join("benchmarks", "results"), "directory for bench.txt, results.json, results.csv and table.md")
	count := flag.Int("count", 3, "runs of each benchmark; the median is shown")
	quick := flag.Bool("quick", false, "small item counts and one run: checks that everything runs, measures little")
	flag.Parse()
	if *count < 1 {
		fmt.Fprintln(os.Stderr, "runner: -count must be at least 1")
		os.Exit(2)
	}
	if *quick {
		*count = 1
	}
	if err := run(context.Background(), *out, *count, *quick); err != nil {
		fmt.Fprintln(os.Stderr, "runner:", err)
		os.Exit(1)
	}
}

// Result is one run of one benchmark.
type Result struct {
	Name    string             `json:"name"`   // as go test prints it, without the -GOMAXPROCS suffix
	Params  map[string]string  `json:"params"` // the key=value parts of the name
	N       int                `json:"n"`
	Metrics map[string]float64 `json:"metrics"` // unit -> value, ns/op among them
}

// Report is what results.json holds.
type Report struct {
	Machine Machine  `json:"machine"`
	Count   int      `json:"count"`
	Results []Result `json:"results"`
	// PeakRSS is each role's peak resident memory, in MiB, in a run of
	// 1,000,000 no-op items with a process per role over ipc.
	PeakRSS map[string]float64 `json:"peak_rss_mib"`
}

// Machine names where the figures come from.
type Machine struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	OS     string `json:"os"`
	Go     string `json:"go"`
	Libzmq string `json:"libzmq"`
	Date   string `json:"date"`
}

func run(ctx context.Context, out string, count int, quick bool) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	raw, err := os.Create(filepath.Join(out, "bench.txt"))
	if err != nil {
		return err
	}
	defer raw.Close()
	rep := Report{Machine: machine(), Count: count}
	for _, g := range groups {
		n := g.items
		if quick {
			n = g.quickItems
		}
		fmt.Fprintf(os.Stderr, "runner: %s (%d items a run, %d runs)\n", g.description, n, count)
		cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", g.pattern,
			"-benchtime", fmt.Sprintf("%dx", n), "-count", strconv.Itoa(count), "./benchmarks/")
		var buf bytes.Buffer
		cmd.Stdout = io.MultiWriter(&buf, raw)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", g.description, err)
		}
		results, err := parse(&buf)
		if err != nil {
			return err
		}
		if len(results) == 0 {
			return fmt.Errorf("%s: no benchmark matched %s", g.description, g.pattern)
		}
		rep.Results = append(rep.Results, results...)
	}
	items := 1_000_000
	if quick {
		items = 20_000
	}
	fmt.Fprintf(os.Stderr, "runner: peak memory of %d no-op items, a process per role over ipc\n", items)
	if rep.PeakRSS, err = peakRSS(ctx, items); err != nil {
		return err
	}
	return write(out, rep)
}

// benchLine is a result line of go test -bench.
var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.+)$`)

// parse reads go test -bench output.
func parse(r io.Reader) ([]Result, error) {
	var results []Result
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		res := Result{Name: m[1], N: n, Params: params(m[1]), Metrics: map[string]float64{}}
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("%s: figure %q: %w", m[1], f[i], err)
			}
			res.Metrics[f[i+1]] = v
		}
		results = append(results, res)
	}
	return results, sc.Err()
}

// params returns the key=value parts of a benchmark name, and its top
// level as "benchmark".
func params(name string) map[string]string {
	parts := strings.Split(name, "/")
	p := map[string]string{"benchmark": strings.TrimPrefix(parts[0], "Benchmark")}
	for _, part := range parts[1:] {
		if k, v, ok := strings.Cut(part, "="); ok {
			p[k] = v
		}
	}
	return p
}

// medians returns, per benchmark name in first-seen order, the median of
// each figure over its runs.
func medians(results []Result) []Result {
	var order []string
	runs := map[string][]Result{}
	for _, r := range results {
		if _, ok := runs[r.Name]; !ok {
			order = append(order, r.Name)
		}
		runs[r.Name] = append(runs[r.Name], r)
	}
	var out []Result
	for _, name := range order {
		rs := runs[name]
		m := Result{Name: name, Params: rs[0].Params, N: rs[0].N, Metrics: map[string]float64{}}
		for unit := range rs[0].Metrics {
			var vs []float64
			for _, r := range rs {
				vs = append(vs, r.Metrics[unit])
			}
			slices.Sort(vs)
			m.Metrics[unit] = vs[len(vs)/2]
		}
		out = append(out, m)
	}
	return out
}

func write(out string, rep Report) error {
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "results.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	med := medians(rep.Results)
	var c bytes.Buffer
	w := csv.NewWriter(&c)
	_ = w.Write([]string{"name", "benchmark", "transport", "workers", "goroutines", "item", "metric", "value"})
	for _, r := range med {
		units := slices.Sorted(func(yield func(string) bool) {
			for u := range r.Metrics {
				if !yield(u) {
					return
				}
			}
		})
		for _, u := range units {
			p := r.Params
			_ = w.Write([]string{r.Name, p["benchmark"], p["transport"], p["workers"], p["goroutines"], p["item"], u, strconv.FormatFloat(r.Metrics[u], 'g', 6, 64)})
		}
	}
	for _, role := range slices.Sorted(func(yield func(string) bool) {
		for r := range rep.PeakRSS {
			if !yield(r) {
				return
			}
		}
	}) {
		_ = w.Write([]string{"PeakRSS/role=" + role, "PeakRSS", "ipc", "", "", "", "MiB", strconv.FormatFloat(rep.PeakRSS[role], 'f', 1, 64)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "results.csv"), c.Bytes(), 0o644); err != nil {
		return err
	}
	var t bytes.Buffer
	table(&t, rep, med)
	if err := os.WriteFile(filepath.Join(out, "table.md"), t.Bytes(), 0o644); err != nil {
		return err
	}
	_, err = os.Stdout.Write(t.Bytes())
	return err
}

// table writes the figures as Markdown, each beside its ceiling.
func table(w io.Writer, rep Report, med []Result) {
	m := rep.Machine
	fmt.Fprintf(w, "Measured %s on %s (%d cores), %s, %s, libzmq %s; medians of %d runs.\n\n", m.Date, m.CPU, m.Cores, m.OS, m.Go, m.Libzmq, rep.Count)
	fmt.Fprintln(w, "| benchmark | items/s | ceiling (same run) | % of ceiling | allocs/item | B/item |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range med {
		rate, ok := r.Metrics["items/s"]
		ceiling, hasCeiling := r.Metrics["ceiling-items/s"]
		if !ok || !hasCeiling {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.1f | %s | %s |\n", r.Name, thousands(rate), thousands(ceiling), r.Metrics["pct-of-ceiling"],
			optional(r.Metrics, "allocs/op", "%.0f"), optional(r.Metrics, "B/op", "%.0f"))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| items of work | overhead % | plain goroutines % | added (points) |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: |")
	for _, r := range med {
		if _, ok := r.Metrics["added-points"]; ok {
			fmt.Fprintf(w, "| %s | %.2f | %.2f | %+.2f |\n", r.Name, r.Metrics["overhead-pct"], r.Metrics["plain-overhead-pct"], r.Metrics["added-points"])
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| other | figure |")
	fmt.Fprintln(w, "| --- | ---: |")
	for _, r := range med {
		for _, unit := range []string{"ms-to-first-result", "ms-to-end", "msgs/s"} {
			if v, ok := r.Metrics[unit]; ok {
				fmt.Fprintf(w, "| %s | %s %s |\n", r.Name, strconv.FormatFloat(v, 'f', 2, 64), unit)
			}
		}
		if b := r.Params["benchmark"]; b == "DurableRun" || b == "PlainPool" || b == "Observed" {
			fmt.Fprintf(w, "| %s | %s items/s |\n", r.Name, thousands(r.Metrics["items/s"]))
		}
	}
	for _, role := range []string{"distributor", "collector", "worker"} {
		if v, ok := rep.PeakRSS[role]; ok {
			fmt.Fprintf(w, "| peak RSS of the %s, 1,000,000 no-op items, a process per role over ipc | %.1f MiB |\n", role, v)
		}
	}
}

func optional(m map[string]float64, unit, format string) string {
	if v, ok := m[unit]; ok {
		return fmt.Sprintf(format, v)
	}
	return ""
}

// thousands formats a rate: 1234567 as 1.23 M, 45678 as 45.7 k.
func thousands(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2f M", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1f k", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// peakRSS runs the singlethread example's three roles as processes over
// ipc with n no-op items, and returns each one's peak resident memory in
// MiB, as the kernel accounts it when the process ends.
func peakRSS(ctx context.Context, n int) (map[string]float64, error) {
	dir, err := os.MkdirTemp("", "runner")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "singlethread")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./examples/singlethread").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build the singlethread example: %w\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	eps := []string{"-distributor", "ipc://" + filepath.Join(dir, "d.ipc"), "-collector", "ipc://" + filepath.Join(dir, "c.ipc")}
	roles := []string{"collector", "worker", "distributor"}
	cmds := map[string]*exec.Cmd{}
	outs := map[string]*bytes.Buffer{}
	for _, role := range roles {
		cmd := exec.CommandContext(ctx, bin, append([]string{"-role", role, "-n", strconv.Itoa(n), "-delay", "0s"}, eps...)...)
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		cmd.WaitDelay = 5 * time.Second
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		cmds[role], outs[role] = cmd, out
	}
	rss := map[string]float64{}
	var errs []error
	for _, role := range roles {
		cmd := cmds[role]
		if err := cmd.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w\n%s", role, err, outs[role]))
			continue
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss[role] = float64(ru.Maxrss) / 1024 // KiB on Linux
		}
	}
	return rss, errors.Join(errs...)
}

// machine describes this machine.
func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version(), Date: time.Now().UTC().Format("2006-01-02")}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	m.CPU = cmp.Or(m.CPU, "unknown CPU")
	if out, err := exec.Command("pkg-config", "--modversion", "libzmq").Output(); err == nil {
		m.Libzmq = strings.TrimSpace(string(out))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.OS = "Linux " + strings.TrimSpace(string(b)) + " " + runtime.GOARCH
	}
	return m
}
