// Image-processing is the seed's image workflow: validate an upload's size,
// resize it to a 200-pixel-wide thumbnail, and upload the thumbnail as a
// commit.
//
// The seed passes the file's bytes in the input. A Flux run stores its input
// and a snapshot of its data as JSON after every node, so this port passes
// the key of the upload in an object store instead, and keeps only the small
// thumbnail in the data. The resize uses nothing but the standard library:
// image/png decodes, a box filter scales, image/png encodes.
//
// It processes two uploads: a generated 800×600 PNG, which becomes a 200×150
// thumbnail, and an 11 MiB file, which validate rejects with flux.Permanent,
// so it fails at once instead of being retried.
//
// Run it from the module root:
//
//	go run ./examples/image-processing
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/flux-go/flux"
)

const (
	maxUploadBytes = 10 << 20 // 10 MiB
	thumbWidth     = 200
)

// Input names an upload waiting in the object store.
type Input struct {
	Key      string `json:"key"`      // where the upload is
	FileName string `json:"fileName"` // its original name
}

// Data is what the steps record.
type Data struct {
	Thumbnail []byte `json:"thumbnail,omitempty"` // PNG, thumbWidth pixels wide
	URL       string `json:"url,omitempty"`       // where upload put it
}

// errTooLarge is the cause of a run whose upload is over maxUploadBytes.
var errTooLarge = errors.New("file too large")

// newImageFlow returns the workflow, reading and writing store.
func newImageFlow(store *objectStore) *flux.Workflow[Input, Data] {
	return flux.New[Input, Data]("image-processing").
		Step("validate", func(c *flux.Ctx[Input, Data]) error {
			size, err := store.Size(c, c.Input.Key)
			if err != nil {
				return err
			}
			if size > maxUploadBytes {
				// A retry cannot make the file smaller: fail at once.
				return flux.Permanent(fmt.Errorf("%w: %s is %d bytes, the limit is %d", errTooLarge, c.Input.FileName, size, maxUploadBytes))
			}
			return nil
		}).
		Step("resize", func(c *flux.Ctx[Input, Data]) error {
			b, err := store.Get(c, c.Input.Key)
			if err != nil {
				return err
			}
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				return flux.Permanent(fmt.Errorf("decoding %s: %w", c.Input.FileName, err))
			}
			var buf bytes.Buffer
			if err := png.Encode(&buf, resizeToWidth(img, thumbWidth)); err != nil {
				return err
			}
			c.Data.Thumbnail = buf.Bytes()
			return nil
		}).
		Commit("upload", func(c *flux.Ctx[Input, Data]) error {
			url, err := store.Put(c, "thumbnails/"+c.Input.FileName, c.Data.Thumbnail)
			if err != nil {
				return err
			}
			c.Data.URL = url
			return nil
		})
}

// resizeToWidth scales src to width pixels wide, keeping its aspect ratio.
// Each destination pixel is the average of the source pixels it covers (a
// box filter), which is what a thumbnail wants when shrinking.
func resizeToWidth(src image.Image, width int) *image.RGBA {
	sb := src.Bounds()
	sw, sh := sb.Dx(), sb.Dy()
	height := max(1, sh*width/max(1, sw))
	// Premultiplied RGBA, so averaging treats transparent pixels right.
	s := image.NewRGBA(image.Rect(0, 0, sw, sh))
	draw.Draw(s, s.Bounds(), src, sb.Min, draw.Src)
	dst := image.NewRGBA(image.Rect(0, 0, width, height))
	for y := range height {
		y0 := y * sh / height
		y1 := max((y+1)*sh/height, y0+1)
		for x := range width {
			x0 := x * sw / width
			x1 := max((x+1)*sw/width, x0+1)
			var sum [4]int
			for sy := y0; sy < y1; sy++ {
				row := s.Pix[sy*s.Stride:]
				for sx := x0; sx < x1; sx++ {
					for k := range sum {
						sum[k] += int(row[sx*4+k])
					}
				}
			}
			n := (y1 - y0) * (x1 - x0)
			d := dst.Pix[y*dst.Stride+x*4:]
			for k := range sum {
				d[k] = uint8(sum[k] / n)
			}
		}
	}
	return dst
}

// samplePNG draws a w×h gradient: red grows left to right, green top to
// bottom.
func samplePNG(w, h int) ([]byte, error) {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{R: uint8(x * 255 / (w - 1)), G: uint8(y * 255 / (h - 1)), B: 128, A: 255})
		}
	}
	var buf bytes.Buffer
	err := png.Encode(&buf, img)
	return buf.Bytes(), err
}

// outcome is what run did.
type outcome struct {
	Photo    *flux.Result[Data] // the upload that fits
	TooLarge *flux.Result[Data] // the one over the limit
	Err      error              // why TooLarge failed
	Store    *objectStore
}

func main() {
	if _, err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run processes a photo that fits and a file that does not.
func run(ctx context.Context, out io.Writer) (*outcome, error) {
	photo, err := samplePNG(800, 600)
	if err != nil {
		return nil, err
	}
	store := &objectStore{}
	store.put("uploads/1", photo)
	store.put("uploads/2", make([]byte, 11<<20))

	// The engine logs failures at error level; this program prints its own.
	engine, err := flux.NewEngine(flux.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	defer engine.Close()
	flow := newImageFlow(store)

	o := &outcome{Store: store}
	o.Photo, err = flux.Execute(ctx, engine, flow, Input{Key: "uploads/1", FileName: "photo.png"})
	if err != nil {
		return o, err
	}
	report(out, o.Photo)
	fmt.Fprintf(out, "  thumbnail: %d bytes at %s\n", len(o.Photo.Data.Thumbnail), o.Photo.Data.URL)

	o.TooLarge, o.Err = flux.Execute(ctx, engine, flow, Input{Key: "uploads/2", FileName: "huge.png"})
	if !errors.Is(o.Err, errTooLarge) {
		return o, fmt.Errorf("huge.png: want a too-large error, got %v", o.Err)
	}
	report(out, o.TooLarge)
	fmt.Fprintf(out, "  error: %v\n", o.Err)
	return o, nil
}

func report(out io.Writer, res *flux.Result[Data]) {
	fmt.Fprintf(out, "run %s %s in %s\n", res.ID, res.Status, res.Duration.Round(time.Millisecond))
	for _, s := range res.Steps {
		fmt.Fprintf(out, "  %-8s %-6s %s after %d attempt(s)\n", s.Name, s.Kind, s.Status, len(s.Attempts))
	}
}

// objectStore is a fake in-memory object store, like S3.
type objectStore struct {
	mu      sync.Mutex
	objects map[string][]byte
}

func (s *objectStore) put(key string, b []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.objects == nil {
		s.objects = make(map[string][]byte)
	}
	s.objects[key] = bytes.Clone(b)
	return "mem://bucket/" + key
}

// Put stores b under key and returns its URL.
func (s *objectStore) Put(ctx context.Context, key string, b []byte) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	return s.put(key, b), nil
}

// Get returns the object stored under key.
func (s *objectStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objects[key]
	if !ok {
		return nil, flux.Permanent(fmt.Errorf("object store: no object %q", key))
	}
	return bytes.Clone(b), nil
}

// Size returns the size of the object stored under key.
func (s *objectStore) Size(ctx context.Context, key string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objects[key]
	if !ok {
		return 0, flux.Permanent(fmt.Errorf("object store: no object %q", key))
	}
	return len(b), nil
}
