package postgres

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/ferry-faas/ferry"
)

// Stats summarise the invocations of one function created in a window, from
// their records (every API and worker process sees the same numbers, unlike
// the per-process Prometheus metrics).
type Stats struct {
	Invocations int // created in the window, whatever their status
	Errors      int // failed or timeout
	Finished    int // in a final status
	Cold        int // cold starts
	// P50MS and P99MS are percentiles of the handler's duration
	// (ferry.Metrics.DurationMS) over the finished invocations that have
	// metrics; 0 when there are none.
	P50MS, P99MS float64
}

// ErrorRate is Errors over Finished, 0 without finished invocations.
func (s Stats) ErrorRate() float64 {
	if s.Finished == 0 {
		return 0
	}
	return float64(s.Errors) / float64(s.Finished)
}

// statsColumns aggregate invocations rows into Stats.
const statsColumns = `count(*),
	count(*) FILTER (WHERE status IN ('failed', 'timeout')),
	count(*) FILTER (WHERE status IN ('completed', 'failed', 'timeout', 'cancelled')),
	count(*) FILTER (WHERE (metrics->>'cold')::boolean),
	coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY (metrics->>'duration_ms')::float8), 0),
	coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY (metrics->>'duration_ms')::float8), 0)`

// FunctionStats returns the Stats of each function since a time, by function
// identity (ferry.Function.ID); a function without invocations is absent.
func (db *DB) FunctionStats(ctx context.Context, fns []ferry.Function, since time.Time) (map[uuid.UUID]Stats, error) {
	names := make([]string, len(fns))
	ids := make([]uuid.UUID, len(fns))
	for i, f := range fns {
		names[i], ids[i] = f.Name, f.ID
	}
	rows, err := db.pool.Query(ctx, `SELECT function_id, `+statsColumns+`
		FROM invocations WHERE function = ANY($1) AND function_id = ANY($2) AND created_at >= $3
		GROUP BY function_id`, names, ids, since)
	if err != nil {
		return nil, db.mapErr(err, "invocation statistics")
	}
	defer rows.Close()
	out := make(map[uuid.UUID]Stats, len(fns))
	for rows.Next() {
		var id uuid.UUID
		var s Stats
		if err := rows.Scan(&id, &s.Invocations, &s.Errors, &s.Finished, &s.Cold, &s.P50MS, &s.P99MS); err != nil {
			return nil, db.mapErr(err, "invocation statistics")
		}
		out[id] = s
	}
	if err := rows.Err(); err != nil {
		return nil, db.mapErr(err, "invocation statistics")
	}
	return out, nil
}

// StatsBucket is the Stats of the invocations created in [Start, Start+step).
type StatsBucket struct {
	Start time.Time
	Stats
}

// MaxStatsBuckets bounds the buckets of one InvocationSeries.
const MaxStatsBuckets = 500

// InvocationSeries returns the Stats of function fn per step from since until
// now, oldest first, with a bucket (maybe empty) for every step.
func (db *DB) InvocationSeries(ctx context.Context, fn ferry.Function, since time.Time, step time.Duration) ([]StatsBucket, error) {
	now := time.Now()
	if step <= 0 || !since.Before(now) || now.Sub(since)/step >= MaxStatsBuckets {
		return nil, ferry.Errorf(ferry.EINVALID, "statistics: at most %d buckets of a positive step", MaxStatsBuckets)
	}
	since = since.UTC().Truncate(step)
	rows, err := db.pool.Query(ctx, `SELECT date_bin($4::interval, created_at, $3), `+statsColumns+`
		FROM invocations WHERE function = $1 AND function_id = $2 AND created_at >= $3
		GROUP BY 1`, fn.Name, fn.ID, since, step)
	if err != nil {
		return nil, db.mapErr(err, "invocation statistics")
	}
	defer rows.Close()
	got := map[time.Time]Stats{}
	for rows.Next() {
		var at time.Time
		var s Stats
		if err := rows.Scan(&at, &s.Invocations, &s.Errors, &s.Finished, &s.Cold, &s.P50MS, &s.P99MS); err != nil {
			return nil, db.mapErr(err, "invocation statistics")
		}
		got[at.UTC()] = s
	}
	if err := rows.Err(); err != nil {
		return nil, db.mapErr(err, "invocation statistics")
	}
	var out []StatsBucket
	for at := since; at.Before(now); at = at.Add(step) {
		out = append(out, StatsBucket{Start: at, Stats: got[at]})
	}
	return out, nil
}
