// Package bench measures Ferry's hot path over its REST API against the bare
// Temporal baseline on the same server (`ferry bench`; results and method in
// docs/BENCHMARKS.md).
package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Result is the outcome of one load: the latencies of the calls that
// succeeded, sorted, and the errors.
type Result struct {
	Lat     []time.Duration
	Elapsed time.Duration
	Errors  int
	First   error // the first error, if any
}

// P is the q-th percentile latency in milliseconds.
func (r Result) P(q int) float64 {
	if len(r.Lat) == 0 {
		return 0
	}
	i := min(len(r.Lat)-1, len(r.Lat)*q/100)
	return float64(r.Lat[i].Microseconds()) / 1000
}

// Rate is the successful calls per second.
func (r Result) Rate() float64 { return float64(len(r.Lat)) / r.Elapsed.Seconds() }

// Row is r as a row of the invoke table (Markdown).
func (r Result) Row(name string, c int) string {
	s := fmt.Sprintf("| %s | %d | %d | %.1f | %.1f | %.1f | %.0f | %d |", name, c, len(r.Lat)+r.Errors, r.P(50), r.P(95), r.P(99), r.Rate(), r.Errors)
	if r.First != nil {
		s += " first error: " + r.First.Error()
	}
	return s
}

// Load calls op n times from c goroutines, after warmup unmeasured calls at
// the same concurrency (so that every warm container the load needs exists).
func Load(ctx context.Context, n, warmup, c int, op func(context.Context) error) Result {
	if warmup > 0 {
		Load(ctx, max(warmup, c), 0, c, op)
	}
	var (
		mu  sync.Mutex
		res Result
		wg  sync.WaitGroup
	)
	jobs := make(chan struct{}, n)
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	began := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				t := time.Now()
				err := op(ctx)
				d := time.Since(t)
				mu.Lock()
				if err != nil {
					res.Errors++
					if res.First == nil {
						res.First = err
					}
				} else {
					res.Lat = append(res.Lat, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(began)
	slices.Sort(res.Lat)
	return res
}

// Merge is r and o as one load: their latencies, times and errors together.
func (r Result) Merge(o Result) Result {
	r.Lat = append(r.Lat, o.Lat...)
	slices.Sort(r.Lat)
	r.Elapsed += o.Elapsed
	r.Errors += o.Errors
	if r.First == nil {
		r.First = o.First
	}
	return r
}
