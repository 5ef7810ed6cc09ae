package api

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
)

// On mangled documents the checks must neither panic nor pass what then
// fails to decode for a type reason.
func TestCheckJSONOnMangledDocuments(t *testing.T) {
	seeds := []string{
		`{"name":"a","steps":[{"function":"x","version":3,"parallel":[{"map":{"function":"y"}}]}]}`,
		`{"name":"\ud800\udc00","payload":{"a":[1,2]},"target":{"version":1}}`,
		`{"env":{"A":"1"},"cpus":0.5,"network":true}`,
		`[1,"x",{"a":null}]`,
	}
	types := []reflect.Type{nil, reflect.TypeOf(&chainRequest{}), reflect.TypeOf(&Schedule{}),
		reflect.TypeOf(&deployRequest{}), reflect.TypeOf(map[string]string{})}
	alphabet := []byte("{}[]\",:\\u0dD8C1e.-tfn \xff\xc3é")
	r := rand.New(rand.NewSource(1))
	for range 20000 {
		b := []byte(seeds[r.Intn(len(seeds))])
		for range 1 + r.Intn(4) {
			p := r.Intn(len(b))
			switch r.Intn(3) {
			case 0:
				b = append(b[:p], append([]byte{alphabet[r.Intn(len(alphabet))]}, b[p:]...)...)
			case 1:
				b = append(b[:p], b[p+1:]...)
			default:
				b[p] = alphabet[r.Intn(len(alphabet))]
			}
		}
		for _, ty := range types {
			if ty == nil {
				if checkJSON("event", b) == nil && !json.Valid(b) {
					t.Fatalf("%q passed the check but is not JSON", b)
				}
				continue
			}
			if unmarshalStrict("body", b, reflect.New(ty).Interface()) != nil {
				continue
			}
			var te *json.UnmarshalTypeError
			if err := json.Unmarshal(b, reflect.New(ty).Interface()); err != nil && reflect.TypeOf(err) == reflect.TypeOf(te) {
				t.Fatalf("%q passed the check but: %v", b, err)
			}
		}
	}
}

// event6MiB is an event of 6 MiB: objects, strings with escapes and
// non-ASCII text, numbers, literals.
func event6MiB() []byte {
	var b strings.Builder
	b.WriteString(`{"items": [`)
	for i := 0; b.Len() < 6<<20; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id": %d, "name": "item %d café \u00e9 😀", "tags": ["a", "b\n"], "price": %d.25, "ok": true, "meta": {"x": null}}`, i, i, i)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// The check of every event the API receives (before: about 46 ms a run of
// 6 MiB with the hand-written scanner and json.Valid; go-json-experiment's
// jsontext: about 23 ms).
func BenchmarkCheckEvent6MiB(b *testing.B) {
	ev := event6MiB()
	b.SetBytes(int64(len(ev)))
	for b.Loop() {
		if err := checkJSON("event", ev); err != nil {
			b.Fatal(err)
		}
	}
}
