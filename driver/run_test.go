package driver

import (
	"encoding/json"
	"testing"
	"time"
)

// A clone shares no memory with its original: changing one's bytes,
// attempts or signals leaves the other as it was.
func TestCloneIsDeep(t *testing.T) {
	orig := &Run{
		ID: "r", Input: json.RawMessage(`{"n":1}`), Data: json.RawMessage(`{"d":2}`),
		Steps:   []StepState{{Name: "a", Attempts: []Attempt{{Number: 1, Error: "boom"}}}},
		Signals: []Signal{{Seq: 1, Name: "approve", Payload: json.RawMessage(`{"ok":true}`), SentAt: time.Unix(1, 0), Node: -1}},
	}
	c := orig.Clone()
	c.Input[1], c.Data[1] = 'X', 'X'
	c.Steps[0].Attempts[0].Error = "changed"
	c.Signals[0].Payload[1] = 'X'
	c.Signals[0].Node = 3
	if string(orig.Input) != `{"n":1}` || string(orig.Data) != `{"d":2}` || orig.Steps[0].Attempts[0].Error != "boom" {
		t.Fatalf("changing the clone changed the original: input %s, data %s, attempt error %q", orig.Input, orig.Data, orig.Steps[0].Attempts[0].Error)
	}
	if string(orig.Signals[0].Payload) != `{"ok":true}` || orig.Signals[0].Node != -1 {
		t.Fatalf("changing the clone's signal changed the original's: payload %s, node %d", orig.Signals[0].Payload, orig.Signals[0].Node)
	}
	if none := (&Run{ID: "x"}).Clone(); none.Signals != nil || none.Steps != nil {
		t.Fatalf("a run without signals or steps cloned to %d signals, %d steps", len(none.Signals), len(none.Steps))
	}
}
