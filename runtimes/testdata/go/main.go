// Test function for the executor tests: one handler, the operation is in the event.
package main

import (
	"context"
	"errors"
	"time"
)

type Event struct {
	Op   string  `json:"op"`
	Name string  `json:"name"`
	S    float64 `json:"s"`
	N    int     `json:"n"`
}

func Handle(ctx context.Context, ev Event) (any, error) {
	switch ev.Op {
	case "hello":
		println("hello from go")
		return map[string]string{"hello": ev.Name}, nil
	case "raise":
		return nil, errors.New("bad input: 7")
	case "sleep":
		time.Sleep(time.Duration(ev.S * float64(time.Second)))
		return "slept", nil
	case "echo":
		return ev, nil
	}
	return nil, errors.New("unknown op " + ev.Op)
}
