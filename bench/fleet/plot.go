package fleet

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"time"
)

// The picture's colours: one per strategy, in order.
var (
	white     = color.RGBA{255, 255, 255, 255}
	ink       = color.RGBA{30, 30, 30, 255}
	gridInk   = color.RGBA{225, 225, 225, 255}
	downShade = color.RGBA{255, 228, 225, 255}
	refusedC  = color.RGBA{150, 150, 150, 255}
	palette   = []color.RGBA{
		{31, 119, 180, 255}, // blue
		{214, 39, 40, 255},  // red
		{230, 140, 0, 255},  // orange
		{44, 160, 44, 255},  // green
	}
)

// bin is the width of the picture's bars.
const bin = 100 * time.Millisecond

// Plot draws the storms of r as a PNG: one panel per strategy, stacked on
// a common time axis (seconds since the broker was stopped) and a common
// scale of connection attempts per second in 100 ms bins, the attempts no
// broker took in grey, the outage shaded, and marks where 99% and all of
// the clients were back.
func Plot(w io.Writer, r *Result) error {
	if len(r.Storms) == 0 {
		return fmt.Errorf("fleet: no storm to draw")
	}
	const (
		width   = 1600
		panelH  = 250
		gap     = 58
		top     = 128
		left    = 130
		right   = 40
		bottom  = 80
		s       = 2 // text scale: 10×14 px letters
		s2      = 3 // the title's
		barFrac = 0.8
	)
	height := top + len(r.Storms)*panelH + (len(r.Storms)-1)*gap + bottom
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	fillRect(img, 0, 0, width, height, white)

	// Common axes.
	xmin, xmax := 0.0, 0.0
	ymax := 0.0
	for _, st := range r.Storms {
		xmin = math.Min(xmin, time.Duration(st.Start).Seconds())
		xmax = math.Max(xmax, time.Duration(st.Start).Seconds()+float64(len(st.Attempts))*BucketWidth.Seconds())
		xmax = math.Max(xmax, time.Duration(st.T100).Seconds()+0.5)
		for _, b := range bins(st.Attempts) {
			ymax = math.Max(ymax, float64(b)/bin.Seconds())
		}
	}
	xmin = math.Floor(xmin)
	xmax = math.Ceil(xmax)
	ystep := niceStep(ymax / 5)
	ymax = math.Max(ystep, math.Ceil(ymax/ystep)*ystep)
	xstep := niceStep((xmax - xmin) / 15)

	title := fmt.Sprintf("Reconnect storm: %d %s clients, broker restarted", r.Clients, r.Client)
	drawText(img, left, 18, title, s2, ink)
	sub := fmt.Sprintf("%s. Attempts (SYN) per second at its port, 100 ms bins.", brokerName(r.Broker, r.Storms[0].Down))
	drawText(img, left, 18+7*s2+14, sub, s, ink)
	// Legend for the shading.
	ly := 18 + 7*s2 + 14 + 7*s + 14
	fillRect(img, left, ly, 28, 7*s, downShade)
	drawText(img, left+36, ly, "broker down", s, ink)
	fillRect(img, left+36+textWidth("broker down", s)+30, ly, 28, 7*s, refusedC)
	drawText(img, left+36+textWidth("broker down", s)+30+36, ly, "refused (RST)", s, ink)
	lx := left + 36 + textWidth("broker down", s) + 30 + 36 + textWidth("refused (RST)", s) + 30
	fillRect(img, lx, ly, 3, 7*s, ink)
	drawText(img, lx+10, ly, "all clients back (dashed: 99%)", s, ink)

	pw := width - left - right
	for k, st := range r.Storms {
		c := palette[k%len(palette)]
		y0 := top + k*(panelH+gap) // panel top
		px := func(sec float64) int { return left + int(math.Round((sec-xmin)/(xmax-xmin)*float64(pw))) }
		py := func(v float64) int { return y0 + panelH - int(math.Round(v/ymax*float64(panelH))) }

		// The outage, then the grid.
		out := time.Duration(st.Outage).Seconds()
		fillRect(img, px(0), y0, px(out)-px(0), panelH, downShade)
		for v := 0.0; v <= ymax+ystep/2; v += ystep {
			fillRect(img, left, py(v), pw, 1, gridInk)
			lbl := siCount(v)
			drawText(img, left-12-textWidth(lbl, s), py(v)-7*s/2, lbl, s, ink)
		}
		for x := math.Ceil(xmin/xstep) * xstep; x <= xmax+1e-9; x += xstep {
			fillRect(img, px(x), y0, 1, panelH, gridInk)
			fillRect(img, px(x), y0+panelH, 1, 6, ink)
			lbl := fmt.Sprintf("%g", math.Round(x*10)/10)
			drawText(img, px(x)-textWidth(lbl, s)/2, y0+panelH+10, lbl, s, ink)
		}

		// The bars: attempts the broker took in the strategy's colour,
		// refused ones above them in grey.
		att, ref := bins(st.Attempts), bins(st.Refused)
		start := time.Duration(st.Start).Seconds()
		bw := max(1, int(float64(pw)*bin.Seconds()/(xmax-xmin)*barFrac))
		for i, a := range att {
			if a == 0 {
				continue
			}
			x := px(start + (float64(i)+0.5)*bin.Seconds())
			all := float64(a) / bin.Seconds()
			served := float64(a-ref[i]) / bin.Seconds()
			fillRect(img, x-bw/2, py(served), bw, py(0)-py(served), c)
			fillRect(img, x-bw/2, py(all), bw, py(served)-py(all), refusedC)
		}
		// Marks: 99% back dashed, everyone back solid.
		if st.T99 > 0 {
			x := px(time.Duration(st.T99).Seconds())
			for y := y0; y < y0+panelH; y += 12 {
				fillRect(img, x, y, 2, 6, ink)
			}
		}
		if st.T100 > 0 {
			fillRect(img, px(time.Duration(st.T100).Seconds()), y0, 3, panelH, ink)
		}
		// Axes.
		fillRect(img, left, y0+panelH, pw, 2, ink)
		fillRect(img, left-1, y0, 2, panelH+2, ink)

		// The panel's title: the strategy and its figures.
		head := fmt.Sprintf("%s: peak %s/s, %s/s taken; %s refused; back: 99%% %s, all %s; lost %d of %s msgs",
			st.Strategy, siCount(float64(st.PeakPerSecond)), siCount(float64(st.PeakTakenPerSecond)), siCount(float64(st.RefusedTotal)),
			secs(st.T99), secs(st.T100), st.Lost, siCount(float64(st.Owed)))
		fillRect(img, left+8, y0+6, 16, 7*s, c)
		label(img, left+32, y0+6, head, s, ink)
		more := fmt.Sprintf("connections dropped %.1f-%.1f s; broker listening again at %.1f s; %s SYNs sent again (backlog full)",
			time.Duration(st.DroppedFirst).Seconds(), time.Duration(st.DroppedLast).Seconds(), out, siCount(float64(st.RetransmitTotal)))
		label(img, left+32, y0+6+7*s+8, more, s, ink)
	}
	// Axis labels.
	xl := "seconds since the broker was stopped"
	drawText(img, left+pw/2-textWidth(xl, s)/2, height-bottom+44, xl, s, ink)
	yl := "attempts / s"
	mid := top + (height-bottom-top)/2
	drawTextUp(img, 18, mid+textWidth(yl, s)/2, yl, s, ink)
	return png.Encode(w, img)
}

// label draws s on a white ground, legible over the bars.
func label(img *image.RGBA, x, y int, s string, scale int, c color.Color) {
	fillRect(img, x-4, y-3, textWidth(s, scale)+8, 7*scale+6, white)
	drawText(img, x, y, s, scale, c)
}

// bins sums 10 ms buckets into 100 ms bins.
func bins(b []int) []int {
	per := int(bin / BucketWidth)
	out := make([]int, (len(b)+per-1)/per)
	for i, v := range b {
		out[i/per] += v
	}
	return out
}

// niceStep rounds x up to 1, 2 or 5 times a power of ten.
func niceStep(x float64) float64 {
	if x <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

// siCount shows a count as 950, 12k, 1.5k.
func siCount(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", math.Round(v/1e5)/10)
	case v >= 1e3:
		return fmt.Sprintf("%gk", math.Round(v/1e2)/10)
	}
	return fmt.Sprintf("%g", math.Round(v))
}

func secs(d Duration) string {
	if d == 0 {
		return "never"
	}
	return fmt.Sprintf("%.1f s", time.Duration(d).Seconds())
}

func brokerName(b string, down Duration) string {
	switch b {
	case Mosquitto:
		return fmt.Sprintf("Mosquitto 2.0, persistence on: SIGTERM, restarted %v after exit", time.Duration(down))
	case Mochi:
		return fmt.Sprintf("mochi-mqtt: killed (sessions lost), restarted %v later", time.Duration(down))
	}
	return b
}
