package client

import (
	"context"
	"net/http"

	"github.com/ferry-faas/ferry"
)

// CreateKey creates an API key (admin keys only) and returns it with its
// secret, which the API shows only this once.
func (c *Client) CreateKey(ctx context.Context, name string, role ferry.Role) (ferry.APIKey, string, error) {
	var k struct {
		ferry.APIKey
		Key string `json:"key"`
	}
	_, err := c.call(ctx, jsonRequest(http.MethodPost, "/v1/keys", map[string]string{"name": name, "role": string(role)}), &k)
	return k.APIKey, k.Key, err
}

// Keys lists every API key, revoked ones included (admin keys only).
func (c *Client) Keys(ctx context.Context) ([]ferry.APIKey, error) {
	var res struct {
		Keys []ferry.APIKey `json:"keys"`
	}
	_, err := c.call(ctx, Request{Method: http.MethodGet, Path: "/v1/keys"}, &res)
	return res.Keys, err
}

// RevokeKey revokes an API key by its id.
func (c *Client) RevokeKey(ctx context.Context, id string) error {
	_, err := c.Do(ctx, Request{Method: http.MethodDelete, Path: "/v1/keys/" + escape(id)})
	return err
}
