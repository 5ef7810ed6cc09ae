package activities

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ferry-faas/ferry"
	"github.com/ferry-faas/ferry/storage/postgres"
	"github.com/google/uuid"
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

func (m memObjects) DeletePrefix(_ context.Context, prefix string) error {
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			delete(m, k)
		}
	}
	return nil
}

// memChainStore keeps chain runs in memory; other ChainStore calls panic.
type memChainStore struct {
	ChainStore
	runs map[uuid.UUID]ferry.ChainRun
}

func (m *memChainStore) GetChainRun(_ context.Context, id uuid.UUID) (ferry.ChainRun, error) {
	r, ok := m.runs[id]
	if !ok {
		return r, ferry.Errorf(ferry.ENOTFOUND, "chain run %s not found", id)
	}
	return r, nil
}

func (m *memChainStore) FinishChainRun(_ context.Context, id uuid.UUID, o postgres.ChainOutcome) (ferry.ChainRun, bool, error) {
	r, ok := m.runs[id]
	if !ok || r.Status.Final() {
		return r, false, nil
	}
	r.Status, r.Output, r.Error = o.Status, o.Output, o.Error
	m.runs[id] = r
	return r, true, nil
}

// TestLoadRunInputRef: a large chain run input travels as a reference to the
// run's record and loads from there, not from the object store.
func TestLoadRunInputRef(t *testing.T) {
	id := uuid.New()
	input := json.RawMessage(`"` + strings.Repeat("i", 300<<10) + `"`)
	a := &Chains{Store: &memChainStore{runs: map[uuid.UUID]ferry.ChainRun{id: {ID: id, Input: input}}}, Objects: memObjects{}}
	ref := RunInputRef(id)
	if ref.Ref != "chain-run-input:"+id.String() || ref.Size() > 64 {
		t.Fatalf("ref %+v", ref)
	}
	got, err := a.load(context.Background(), ref)
	if err != nil || string(got) != string(input) {
		t.Fatalf("load: %d bytes, %v", len(got), err)
	}
	if _, err := a.load(context.Background(), Payload{Ref: "chain-run-input:nope"}); err == nil {
		t.Fatal("a malformed reference loaded")
	}
	if _, err := a.load(context.Background(), RunInputRef(uuid.New())); ferry.ErrorCode(err) != ferry.ENOTFOUND {
		t.Fatalf("the input of a missing run: %v", err)
	}
}

// TestFinishChainDeletesPayloads: FinishChain records the output read from
// the object store, then deletes the run's payloads (only its own); a retry
// after that delete finds the record final and succeeds without the output.
func TestFinishChainDeletesPayloads(t *testing.T) {
	id, other := uuid.New(), uuid.New()
	store := &memChainStore{runs: map[uuid.UUID]ferry.ChainRun{
		id: {ID: id, Status: ferry.StatusRunning}, other: {ID: other, Status: ferry.StatusRunning}}}
	objs := memObjects{
		PayloadKey(id, "0/output"):      []byte(`{"big":true}`),
		PayloadKey(id, "1/items/0"):     []byte(`[1]`),
		PayloadKey(other, "0/output"):   []byte(`2`),
		"payloads/" + id.String() + "x": []byte(`3`), // not under the run's prefix
	}
	a := &Chains{Store: store, Objects: objs}
	in := FinishChainInput{ChainRunID: id, Status: ferry.StatusCompleted, Output: Payload{Ref: PayloadKey(id, "0/output")}}
	for attempt := 1; attempt <= 2; attempt++ {
		if err := a.FinishChain(context.Background(), in); err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		if r := store.runs[id]; r.Status != ferry.StatusCompleted || string(r.Output) != `{"big":true}` {
			t.Fatalf("attempt %d: record %s %s", attempt, r.Status, r.Output)
		}
		if len(objs) != 2 || objs[PayloadKey(other, "0/output")] == nil || objs["payloads/"+id.String()+"x"] == nil {
			t.Fatalf("attempt %d: objects left %v", attempt, objs)
		}
	}
	// A missing output of a run that is not final is an error, not a delete.
	err := a.FinishChain(context.Background(), FinishChainInput{ChainRunID: other, Status: ferry.StatusCompleted,
		Output: Payload{Ref: PayloadKey(other, "gone")}})
	if ferry.ErrorCode(err) != ferry.ENOTFOUND || store.runs[other].Status != ferry.StatusRunning || objs[PayloadKey(other, "0/output")] == nil {
		t.Fatalf("missing output: %v, run %s, objects %v", err, store.runs[other].Status, objs)
	}
}
