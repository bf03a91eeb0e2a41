package main

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"

	"github.com/flux-go/flux"
)

func TestImageProcessing(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	o, err := run(t.Context(), &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}

	// The photo: every node completed once, and the thumbnail is in the store.
	if o.Photo.Status != flux.StatusCompleted {
		t.Fatalf("photo run is %s, want completed", o.Photo.Status)
	}
	for _, s := range o.Photo.Steps {
		if s.Status != flux.StatusCompleted || len(s.Attempts) != 1 {
			t.Errorf("photo: %s is %s after %d attempts, want completed after 1", s.Name, s.Status, len(s.Attempts))
		}
	}
	thumb, err := png.Decode(bytes.NewReader(o.Photo.Data.Thumbnail))
	if err != nil {
		t.Fatalf("thumbnail does not decode: %v", err)
	}
	if b := thumb.Bounds(); b.Dx() != 200 || b.Dy() != 150 {
		t.Errorf("thumbnail is %dx%d, want 200x150", b.Dx(), b.Dy())
	}
	stored, err := o.Store.Get(t.Context(), "thumbnails/photo.png")
	if err != nil || !bytes.Equal(stored, o.Photo.Data.Thumbnail) {
		t.Errorf("stored thumbnail (err %v) differs from Data.Thumbnail", err)
	}
	if !strings.HasSuffix(o.Photo.Data.URL, "thumbnails/photo.png") {
		t.Errorf("URL = %q, want it to end in thumbnails/photo.png", o.Photo.Data.URL)
	}

	// The file over the limit: validate failed once, nothing else ran.
	if !errors.Is(o.Err, errTooLarge) || !flux.IsPermanent(o.Err) {
		t.Errorf("too-large error = %v, want a permanent errTooLarge", o.Err)
	}
	var se *flux.StepError
	if !errors.As(o.Err, &se) || se.Step != "validate" {
		t.Errorf("too-large error = %v, want a *flux.StepError for validate", o.Err)
	}
	steps := o.TooLarge.Steps
	if o.TooLarge.Status != flux.StatusFailed || steps[0].Status != flux.StatusFailed || len(steps[0].Attempts) != 1 {
		t.Errorf("too-large run %s, validate %s after %d attempts; want failed, failed after 1", o.TooLarge.Status, steps[0].Status, len(steps[0].Attempts))
	}
	for _, s := range steps[1:] {
		if s.Status != flux.StatusPending || len(s.Attempts) != 0 {
			t.Errorf("too-large: %s is %s with %d attempts, want pending and never run", s.Name, s.Status, len(s.Attempts))
		}
	}
	if _, err := o.Store.Get(t.Context(), "thumbnails/huge.png"); err == nil {
		t.Error("a thumbnail of huge.png was uploaded")
	}
}

// TestResizeToWidth checks the box filter on a gradient: each thumbnail pixel
// has the colour of the source region it covers.
func TestResizeToWidth(t *testing.T) {
	t.Parallel()
	b, err := samplePNG(800, 600)
	if err != nil {
		t.Fatal(err)
	}
	src, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	thumb := resizeToWidth(src, 200)
	if got := thumb.Bounds(); got != image.Rect(0, 0, 200, 150) {
		t.Fatalf("bounds = %v, want 200x150", got)
	}
	for _, p := range []image.Point{{0, 0}, {199, 0}, {0, 149}, {100, 75}, {199, 149}} {
		// The source block of p is 4x4 pixels starting at 4p; its mean
		// red and green are those of its centre, 4p+1.5.
		wantR := (4*float64(p.X) + 1.5) * 255 / 799
		wantG := (4*float64(p.Y) + 1.5) * 255 / 599
		c := color.RGBAModel.Convert(thumb.At(p.X, p.Y)).(color.RGBA)
		if d := float64(c.R) - wantR; d < -2 || d > 2 {
			t.Errorf("pixel %v: red %d, want %.1f±2", p, c.R, wantR)
		}
		if d := float64(c.G) - wantG; d < -2 || d > 2 {
			t.Errorf("pixel %v: green %d, want %.1f±2", p, c.G, wantG)
		}
		if c.B != 128 || c.A != 255 {
			t.Errorf("pixel %v: blue %d alpha %d, want 128 and 255", p, c.B, c.A)
		}
	}
	// Growing works too: 3 pixels wide become 200, each a copy of one.
	small := image.NewRGBA(image.Rect(0, 0, 3, 2))
	small.Set(2, 1, color.RGBA{R: 255, A: 255})
	big := resizeToWidth(small, 200)
	if got := big.Bounds(); got != image.Rect(0, 0, 200, 133) {
		t.Fatalf("grown bounds = %v, want 200x133", got)
	}
	if c := big.RGBAAt(199, 132); c.R != 255 {
		t.Errorf("grown bottom-right pixel = %v, want the red source pixel", c)
	}
}
