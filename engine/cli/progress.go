package cli

import (
	"cmp"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"github.com/zmqpipeline/zmqpipeline/engine"
)

// Progress on a terminal is drawn with mpb (github.com/vbauerster/mpb/v8):
// a pipeline has several task types, each with its own bar, total and
// state, and mpb draws several bars at once, each with totals that may
// change as it goes (a task that does not know its size), where
// progressbar/v3 draws one. Where the output is not a terminal, plain
// lines are printed instead, without either.

// DefaultProgressEvery is how often a process prints a progress line when
// its output is not a terminal.
const DefaultProgressEvery = 5 * time.Second

// progressDelay is how long a run goes before its bars are drawn: a run
// shorter than that shows none.
const progressDelay = time.Second

// progressOutput is where a process shows its progress.
type progressOutput struct {
	w     io.Writer
	tty   bool          // w is a terminal: bars; otherwise plain lines every every
	every time.Duration // between plain lines
	delay time.Duration // before the bars
	width int           // of a bar; 0 for barWidth
}

// barWidth is a bar's width on a terminal.
const barWidth = 40

// progressView is how far the process's part of the run is at one time.
type progressView struct {
	// noun says what done counts.
	noun string
	// done of total (-1: not known) items; produced is how many exist so
	// far, when the total is not known.
	done, total, produced int64
	rate                  float64
	remaining             time.Duration // 0: not known
	// tasks are the distributor's task types; none in a process without it.
	tasks []engine.TaskStatus
}

// progressMeter reads a process's progress: in a process with the
// distributor, the run's Status; otherwise what the collector handled or
// the workers executed. It measures the rate itself, over the last
// rateWindow of reads, which it makes more often than the distributor's
// heartbeat (Status.Rate's unit), so that a run's first seconds show one.
type progressMeter struct {
	proc    *Process
	samples []progressSample
}

type progressSample struct {
	at   time.Time
	done int64
}

// rateWindow is how far back the meter looks for the rate.
const rateWindow = 10 * time.Second

func (m *progressMeter) read(now time.Time) progressView {
	p := m.proc
	v := progressView{total: -1}
	switch {
	case p.Distributor != nil:
		st := p.Distributor.Status()
		v.noun, v.done, v.total, v.produced, v.tasks = "items complete", st.Completed, st.Total, st.Produced, st.Tasks
	case p.Collector != nil:
		s := p.Collector.Summary()
		v.noun, v.done = "results collected", int64(s.Results+s.Failures)
	default:
		v.noun = "items executed"
		for _, w := range p.Workers {
			v.done += w.Executed()
		}
	}
	if v.total < 0 {
		v.produced = max(v.produced, v.done)
	}
	m.samples = append(m.samples, progressSample{now, v.done})
	for len(m.samples) > 2 && now.Sub(m.samples[1].at) >= rateWindow {
		m.samples = m.samples[1:]
	}
	if first := m.samples[0]; now.After(first.at) {
		v.rate = float64(v.done-first.done) / now.Sub(first.at).Seconds()
	}
	if v.rate > 0 && v.total > v.done {
		v.remaining = time.Duration(float64(v.total-v.done) / v.rate * float64(time.Second))
	}
	return v
}

// showProgress shows the process's progress on out while it runs, until
// the returned function is called with whether the run completed; that
// function draws the bars' last state, and returns once the display is
// gone. A run shorter than out.delay (bars) or out.every (lines) shows
// nothing.
func (p *Process) showProgress(out progressOutput) (end func(completed bool)) {
	stop := make(chan bool, 1)
	var shown sync.WaitGroup
	shown.Go(func() {
		meter := &progressMeter{proc: p}
		meter.read(time.Now()) // the rate is measured from the start
		if out.tty {
			drawBars(meter, out, stop)
		} else {
			printLines(meter, out, stop)
		}
	})
	return func(completed bool) {
		stop <- completed
		shown.Wait()
	}
}

// printLines prints a line every out.every until stop.
func printLines(meter *progressMeter, out progressOutput, stop <-chan bool) {
	tick := time.NewTicker(out.every)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			fmt.Fprintln(out.w, progressLine(meter.read(now)))
		}
	}
}

// progressLine is one plain line of progress, such as
//
//	progress: 4500/10000 items complete (45.0%), 1200 items/s, 4.6s left; A 4500/5000 running, B 0/5000 waiting
func progressLine(v progressView) string {
	var b strings.Builder
	b.WriteString("progress: ")
	if v.total >= 0 {
		fmt.Fprintf(&b, "%d/%d %s (%.1f%%)", v.done, v.total, v.noun, percent(v.done, v.total))
	} else {
		fmt.Fprintf(&b, "%d %s", v.done, v.noun)
	}
	fmt.Fprintf(&b, ", %s", rateText(v.rate))
	if v.remaining > 0 {
		fmt.Fprintf(&b, ", %s left", leftText(v.remaining))
	}
	if len(v.tasks) > 1 {
		for i, t := range v.tasks {
			sep := ", "
			if i == 0 {
				sep = "; "
			}
			fmt.Fprintf(&b, "%s%s %s %s", sep, t.Type, countText(t.Completed, t.Total), t.State)
		}
	}
	return b.String()
}

// percent is done of total in percent; 100 for a total of none.
func percent(done, total int64) float64 {
	if total <= 0 {
		return 100
	}
	return 100 * float64(done) / float64(total)
}

func rateText(rate float64) string {
	if rate >= 100 {
		return fmt.Sprintf("%.0f items/s", rate)
	}
	return fmt.Sprintf("%.1f items/s", rate)
}

// leftText rounds the time left to a tenth of a second under 10s, and to
// a second above.
func leftText(d time.Duration) string {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func countText(done, total int64) string {
	if total < 0 {
		return fmt.Sprintf("%d/?", done)
	}
	return fmt.Sprintf("%d/%d", done, total)
}

// barRefresh is how often the bars are brought up to date.
const barRefresh = 150 * time.Millisecond

// drawBars draws a bar per task type (one for the process, without the
// distributor), and a line for the run when there are several, from
// out.delay on until stop.
func drawBars(meter *progressMeter, out progressOutput, stop <-chan bool) {
	wait := time.NewTimer(out.delay)
	select {
	case <-stop:
		wait.Stop()
		return
	case <-wait.C:
	}
	var view atomic.Pointer[progressView]
	v := meter.read(time.Now())
	view.Store(&v)
	// On a terminal mpb redraws the bars in place; elsewhere (a test's
	// buffer) it writes each frame after the last.
	container := mpb.New(mpb.WithOutput(out.w), mpb.WithAutoRefresh(), mpb.WithWidth(cmp.Or(out.width, barWidth)), mpb.WithRefreshRate(barRefresh))

	type bar struct {
		*mpb.Bar
		counts func(progressView) (done, total, produced int64, complete bool)
	}
	var bars []bar
	width := 0
	for _, t := range v.tasks {
		width = max(width, len(t.Type))
	}
	runText := decor.Any(func(decor.Statistics) string {
		v := view.Load()
		s := rateText(v.rate)
		if v.remaining > 0 {
			s += ", " + leftText(v.remaining) + " left"
		}
		return s
	})
	if len(v.tasks) == 0 {
		// A collector or workers alone: how many, and how fast.
		bars = append(bars, bar{
			Bar: container.New(0, mpb.NopStyle(), mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
				v := view.Load()
				return fmt.Sprintf("%d %s, ", v.done, v.noun)
			})), mpb.AppendDecorators(runText)),
			counts: func(v progressView) (int64, int64, int64, bool) { return v.done, v.total, v.produced, false },
		})
	}
	for i, t := range v.tasks {
		appended := []decor.Decorator{decor.Any(func(decor.Statistics) string {
			t := view.Load().tasks[i]
			s := " " + countText(t.Completed, t.Total) + " " + t.State.String()
			if t.State == engine.TaskWaiting && len(t.DependsOn) > 0 {
				s += " for " + strings.Join(t.DependsOn, ", ")
			}
			return s
		})}
		if len(v.tasks) == 1 {
			appended = append(appended, decor.Any(func(decor.Statistics) string { return ", " }), runText)
		}
		bars = append(bars, bar{
			Bar: container.AddBar(0, mpb.PrependDecorators(decor.Name(t.Type, decor.WC{W: width + 1, C: decor.DindentRight})),
				mpb.AppendDecorators(appended...)),
			counts: func(v progressView) (int64, int64, int64, bool) {
				t := v.tasks[i]
				return t.Completed, t.Total, t.Produced, t.State == engine.TaskComplete
			},
		})
	}
	if len(v.tasks) > 1 {
		bars = append(bars, bar{
			Bar: container.AddBar(0, mpb.PrependDecorators(decor.Name("all", decor.WC{W: width + 1, C: decor.DindentRight})),
				mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
					v := view.Load()
					return " " + countText(v.done, v.total) + " " + v.noun + ", "
				}), runText)),
			counts: func(v progressView) (int64, int64, int64, bool) { return v.done, v.total, v.produced, false },
		})
	}
	update := func(v progressView) {
		view.Store(&v)
		for _, b := range bars {
			done, total, produced, complete := b.counts(v)
			if total < 0 {
				total = produced
			}
			b.SetTotal(max(total, done), false)
			b.SetCurrent(done)
			if complete {
				b.SetTotal(-1, true) // full, and drawn as such from now on
			}
		}
	}
	tick := time.NewTicker(barRefresh)
	defer tick.Stop()
	for {
		select {
		case completed := <-stop:
			update(meter.read(time.Now()))
			for _, b := range bars {
				if completed {
					b.SetTotal(-1, true) // the bar ends where it is: full
				} else {
					b.Abort(false) // the bar stays as it was
				}
			}
			container.Wait()
			return
		case now := <-tick.C:
			update(meter.read(now))
		}
	}
}
