package console

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"

	"github.com/ferry-faas/ferry/storage/postgres"
)

// charts are the function page's charts, drawn here as inline SVG.
type charts struct {
	Invocations template.HTML // invocations and errors per bucket
	Duration    template.HTML // p50 and p99 of the handler's duration
	Cold        template.HTML // cold starts per bucket
	Empty       bool
}

const (
	chartW, chartH = 600, 150
	padL, padB     = 44, 18 // room for the axis labels
	padT           = 8
)

// drawCharts draws the buckets; every text in the SVG is a number or a time
// formatted here, so nothing the user wrote reaches it.
func drawCharts(bs []postgres.StatsBucket, step time.Duration) charts {
	var c charts
	c.Empty = true
	for _, b := range bs {
		if b.Invocations > 0 {
			c.Empty = false
		}
	}
	count := func(f func(postgres.StatsBucket) float64) []float64 {
		out := make([]float64, len(bs))
		for i, b := range bs {
			out[i] = f(b)
		}
		return out
	}
	invs := count(func(b postgres.StatsBucket) float64 { return float64(b.Invocations) })
	errs := count(func(b postgres.StatsBucket) float64 { return float64(b.Errors) })
	c.Invocations = bars(bs, step, "invocations", [][]float64{invs, errs}, []string{"ok", "err"})
	c.Cold = bars(bs, step, "cold starts", [][]float64{count(func(b postgres.StatsBucket) float64 { return float64(b.Cold) })}, []string{"cold"})
	c.Duration = lines(bs, step, "duration", [][]float64{
		count(func(b postgres.StatsBucket) float64 { return b.P50MS }),
		count(func(b postgres.StatsBucket) float64 { return b.P99MS }),
	}, []string{"p50", "p99"})
	return c
}

// niceMax rounds a chart's top up to 1, 2 or 5 times a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func svgStart(b *strings.Builder, label string) {
	fmt.Fprintf(b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" preserveAspectRatio="none">`, chartW, chartH, template.HTMLEscapeString(label))
}

// axes draws the frame, the top value and the first and last bucket's time.
func axes(b *strings.Builder, bs []postgres.StatsBucket, step time.Duration, top string) {
	fmt.Fprintf(b, `<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>`, padL, chartH-padB, chartW, chartH-padB)
	fmt.Fprintf(b, `<line class="grid" x1="%d" y1="%d" x2="%d" y2="%d"/>`, padL, padT, chartW, padT)
	fmt.Fprintf(b, `<text class="tick" x="%d" y="%d" text-anchor="end">%s</text>`, padL-4, padT+4, template.HTMLEscapeString(top))
	fmt.Fprintf(b, `<text class="tick" x="%d" y="%d" text-anchor="end">0</text>`, padL-4, chartH-padB)
	if len(bs) == 0 {
		return
	}
	layout := "15:04"
	if step >= time.Hour {
		layout = "01-02 15:04"
	}
	fmt.Fprintf(b, `<text class="tick" x="%d" y="%d">%s</text>`, padL, chartH-4, bs[0].Start.UTC().Format(layout))
	fmt.Fprintf(b, `<text class="tick" x="%d" y="%d" text-anchor="end">%s UTC</text>`, chartW, chartH-4,
		bs[len(bs)-1].Start.Add(step).UTC().Format(layout))
}

// bars draws one bar per bucket and series, the later series over the former.
func bars(bs []postgres.StatsBucket, step time.Duration, label string, series [][]float64, classes []string) template.HTML {
	var b strings.Builder
	svgStart(&b, label)
	top := 0.0
	for _, v := range series[0] {
		top = math.Max(top, v)
	}
	top = niceMax(top)
	axes(&b, bs, step, fmt.Sprintf("%g", top))
	if n := len(bs); n > 0 {
		w := float64(chartW-padL) / float64(n)
		h := float64(chartH - padB - padT)
		for si, s := range series {
			for i, v := range s {
				if v <= 0 {
					continue
				}
				bh := h * v / top
				fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %g</title></rect>`,
					classes[si], float64(padL)+float64(i)*w+w*0.1, float64(chartH-padB)-bh, w*0.8, bh,
					bs[i].Start.UTC().Format("2006-01-02 15:04"), v)
			}
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// lines draws one polyline per series; buckets without a value are gaps.
func lines(bs []postgres.StatsBucket, step time.Duration, label string, series [][]float64, classes []string) template.HTML {
	var b strings.Builder
	svgStart(&b, label)
	top := 0.0
	for _, s := range series {
		for _, v := range s {
			top = math.Max(top, v)
		}
	}
	top = niceMax(top)
	axes(&b, bs, step, fmtMS(top))
	if n := len(bs); n > 0 {
		w := float64(chartW-padL) / float64(n)
		h := float64(chartH - padB - padT)
		for si, s := range series {
			var pts []string
			flush := func() {
				if len(pts) == 1 { // a lone point: a short dash
					pts = append(pts, pts[0])
				}
				if len(pts) > 0 {
					fmt.Fprintf(&b, `<polyline class="%s" points="%s"/>`, classes[si], strings.Join(pts, " "))
				}
				pts = nil
			}
			for i, v := range s {
				if v <= 0 {
					flush()
					continue
				}
				x := float64(padL) + (float64(i)+0.5)*w
				y := float64(chartH-padB) - h*v/top
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
				fmt.Fprintf(&b, `<circle class="%s" cx="%.1f" cy="%.1f" r="2.5"><title>%s %s: %s</title></circle>`,
					classes[si], x, y, classes[si], bs[i].Start.UTC().Format("2006-01-02 15:04"), fmtMS(v))
			}
			flush()
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
