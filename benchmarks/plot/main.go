// Command plot draws README's performance figure from the results.csv that
// benchmarks/runner writes: items/s against workers (BenchmarkScale, beside
// bare PUSH/PULL measured in the same run), and the overhead against the
// work per item (BenchmarkOverhead, beside plain goroutines doing the same
// work). It is a module of its own, so that the plotting library is not a
// dependency of the engine:
//
//	cd benchmarks/plot && go run . -in ../results/results.csv -out ../performance.png
package main

import (
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"io"
	"os"
	"slices"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

func main() {
	in := flag.String("in", "../results/results.csv", "the runner's results.csv")
	out := flag.String("out", "../performance.png", "the PNG to write")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(1)
	}
}

// row is one line of results.csv: a benchmark's median of one figure.
type row struct {
	benchmark, transport, workers, item, metric string
	value                                       float64
}

func read(path string) ([]row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	for _, want := range []string{"benchmark", "transport", "workers", "item", "metric", "value"} {
		if _, ok := col[want]; !ok {
			return nil, fmt.Errorf("%s: no column %q", path, want)
		}
	}
	var rows []row
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		v, err := strconv.ParseFloat(rec[col["value"]], 64)
		if err != nil {
			return nil, fmt.Errorf("%s: value %q: %w", path, rec[col["value"]], err)
		}
		rows = append(rows, row{rec[col["benchmark"]], rec[col["transport"]], rec[col["workers"]], rec[col["item"]], rec[col["metric"]], v})
	}
}

func run(in, out string) error {
	rows, err := read(in)
	if err != nil {
		return err
	}
	scale, err := scalePlot(rows)
	if err != nil {
		return err
	}
	overhead, err := overheadPlot(rows)
	if err != nil {
		return err
	}
	img := vgimg.New(12*vg.Inch, 4.5*vg.Inch)
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Inch / 2, PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 4}
	canvases := plot.Align([][]*plot.Plot{{scale, overhead}}, tiles, dc)
	scale.Draw(canvases[0][0])
	overhead.Draw(canvases[0][1])
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// scalePlot: items/s against workers over ipc, and the ceiling.
func scalePlot(rows []row) (*plot.Plot, error) {
	var rate, ceiling plotter.XYs
	for _, r := range rows {
		if r.benchmark != "Scale" {
			continue
		}
		w, err := strconv.ParseFloat(r.workers, 64)
		if err != nil {
			return nil, fmt.Errorf("Scale: workers %q: %w", r.workers, err)
		}
		switch r.metric {
		case "items/s":
			rate = append(rate, plotter.XY{X: w, Y: r.value / 1e3})
		case "ceiling-items/s":
			ceiling = append(ceiling, plotter.XY{X: w, Y: r.value / 1e3})
		}
	}
	if len(rate) == 0 {
		return nil, errors.New("no BenchmarkScale figures in the results")
	}
	sortX(rate)
	sortX(ceiling)
	p := plot.New()
	p.Title.Text = "No-op items against workers, over ipc"
	p.X.Label.Text = "workers (single-goroutine, spread over up to 4 processes)"
	p.Y.Label.Text = "thousand items/s"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = fixedTicks(rate)
	p.Y.Min = 0
	p.Y.Max = 1.3 * maxY(append(slices.Clone(rate), ceiling...))
	if err := addLine(p, "pipeline", rate, color.RGBA{R: 31, G: 119, B: 180, A: 255}, false); err != nil {
		return nil, err
	}
	if len(ceiling) > 0 {
		if err := addLine(p, "bare PUSH/PULL, same run (messages/s)", ceiling, color.RGBA{R: 150, G: 150, B: 150, A: 255}, true); err != nil {
			return nil, err
		}
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(10)
	p.Add(plotter.NewGrid())
	return p, nil
}

func maxY(xys plotter.XYs) float64 {
	m := 0.0
	for _, xy := range xys {
		m = max(m, xy.Y)
	}
	return m
}

// overheadPlot: overhead over the ideal time against the work per item,
// for the pipeline and for plain goroutines doing the same work.
func overheadPlot(rows []row) (*plot.Plot, error) {
	var pipeline, plain plotter.XYs
	var noWork, noWorkPlain float64
	for _, r := range rows {
		if r.benchmark != "Overhead" {
			continue
		}
		if r.item == "0" {
			switch r.metric {
			case "items/s":
				noWork = r.value
			case "ceiling-items/s":
				noWorkPlain = r.value
			}
			continue
		}
		d, err := time.ParseDuration(r.item)
		if err != nil {
			return nil, fmt.Errorf("Overhead: item %q: %w", r.item, err)
		}
		x := float64(d) / float64(time.Microsecond)
		switch r.metric {
		case "overhead-pct":
			pipeline = append(pipeline, plotter.XY{X: x, Y: r.value})
		case "plain-overhead-pct":
			plain = append(plain, plotter.XY{X: x, Y: r.value})
		}
	}
	if len(pipeline) == 0 {
		return nil, errors.New("no BenchmarkOverhead figures in the results")
	}
	sortX(pipeline)
	sortX(plain)
	p := plot.New()
	p.Title.Text = "Overhead against the work per item (2 workers, in process)"
	if noWork > 0 {
		p.Title.Text += fmt.Sprintf("\nno work: %.2f M items/s (plain goroutines %.2f M)", noWork/1e6, noWorkPlain/1e6)
	}
	p.X.Label.Text = "work per item, µs (busy, one goroutine per core)"
	p.Y.Label.Text = "% over the ideal time"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = fixedTicks(pipeline)
	p.Y.Min = 0
	p.Y.Max = 1.3 * maxY(append(slices.Clone(pipeline), plain...))
	if err := addLine(p, "pipeline", pipeline, color.RGBA{R: 214, G: 39, B: 40, A: 255}, false); err != nil {
		return nil, err
	}
	if err := addLine(p, "plain goroutines, same work, same run", plain, color.RGBA{R: 150, G: 150, B: 150, A: 255}, true); err != nil {
		return nil, err
	}
	p.Legend.Top = true
	p.Legend.XOffs = -vg.Inch / 2
	p.Add(plotter.NewGrid())
	return p, nil
}

func addLine(p *plot.Plot, name string, xys plotter.XYs, c color.Color, dashed bool) error {
	l, pts, err := plotter.NewLinePoints(xys)
	if err != nil {
		return err
	}
	l.Color, pts.Color = c, c
	l.Width = vg.Points(2)
	if dashed {
		l.Dashes = []vg.Length{vg.Points(6), vg.Points(4)}
	}
	p.Add(l, pts)
	p.Legend.Add(name, l, pts)
	return nil
}

func sortX(xys plotter.XYs) {
	slices.SortFunc(xys, func(a, b plotter.XY) int {
		switch {
		case a.X < b.X:
			return -1
		case a.X > b.X:
			return 1
		}
		return 0
	})
}

// fixedTicks labels the x values that were measured, and no others.
func fixedTicks(xys plotter.XYs) plot.ConstantTicks {
	var ticks []plot.Tick
	for _, xy := range xys {
		ticks = append(ticks, plot.Tick{Value: xy.X, Label: strconv.FormatFloat(xy.X, 'f', -1, 64)})
	}
	return ticks
}
