package client

import (
	"context"
	"net/http"
)

// DeleteChain deletes a chain and its versions (its runs stay).
func (c *Client) DeleteChain(ctx context.Context, name string) error {
	_, err := c.Do(ctx, Request{Method: http.MethodDelete, Path: "/v1/chains/" + escape(name)})
	return err
}
