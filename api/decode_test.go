package api

import (
	"encoding/json"
	"math/rand"
	"reflect"
	"testing"
)

// checkJSON reads raw bytes by hand: on mangled documents it must neither
// panic nor pass what then fails to decode for a type reason.
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
			if checkJSON("body", b, ty) != nil || ty == nil || !json.Valid(b) {
				continue
			}
			var te *json.UnmarshalTypeError
			if err := json.Unmarshal(b, reflect.New(ty).Interface()); err != nil && reflect.TypeOf(err) == reflect.TypeOf(te) {
				t.Fatalf("%q passed the check but: %v", b, err)
			}
		}
	}
}
