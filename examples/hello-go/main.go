// A Go function for Ferry: package main with a Handle function and no main;
// Ferry adds the main that serves it. Its own go.mod keeps it out of Ferry's
// module.
package main

import (
	"context"
	"fmt"
	"runtime"
)

type Event struct {
	Name string `json:"name"`
}

type Reply struct {
	Message string `json:"message"`
	Go      string `json:"go"`
}

func Handle(ctx context.Context, event Event) (Reply, error) {
	if event.Name == "" {
		event.Name = "world"
	}
	fmt.Println("greeting", event.Name) // stdout becomes the invocation's logs
	return Reply{Message: "Hello, " + event.Name + "!", Go: runtime.Version()}, nil
}
