package activities

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestSplitListBoundsChunks: chunks hold at most MapChunk elements and
// ListLimit bytes, and an element above MapItemInline travels by reference.
func TestSplitListBoundsChunks(t *testing.T) {
	objs := memObjects{}
	elems := make([]json.RawMessage, 0, 1300)
	for i := 0; i < 1200; i++ {
		elems = append(elems, json.RawMessage(`1`))
	}
	big := json.RawMessage(`"` + strings.Repeat("x", MapItemInline) + `"`)
	mid := json.RawMessage(`"` + strings.Repeat("y", MapItemInline-100) + `"`)
	elems = append(elems, big)
	for i := 0; i < 40; i++ {
		elems = append(elems, mid)
	}
	data, _ := json.Marshal(elems)
	objs["in"] = data
	a := &Chains{Objects: objs}
	list, err := a.SplitList(context.Background(), SplitInput{Key: "k", Input: Payload{Ref: "in"}})
	if err != nil {
		t.Fatal(err)
	}
	if list.Len() != len(elems) || list.Counts[0] != MapChunk || list.Counts[1] != MapChunk {
		t.Fatalf("counts %v", list.Counts)
	}
	i := 0
	for c := range list.Counts {
		raw := objs[list.ChunkKey(c)]
		if len(raw) > ListLimit {
			t.Errorf("chunk %d has %d bytes", c, len(raw))
		}
		items, err := a.LoadChunk(context.Background(), list.ChunkKey(c))
		if err != nil || len(items) != list.Counts[c] {
			t.Fatalf("chunk %d: %d items, %v", c, len(items), err)
		}
		for _, p := range items {
			if i == 1200 {
				if p.Ref == "" || string(objs[p.Ref]) != string(big) {
					t.Fatalf("element %d inline (%d bytes)", i, len(p.Inline))
				}
			} else if p.Ref != "" {
				t.Fatalf("element %d by reference", i)
			}
			i++
		}
	}
}
